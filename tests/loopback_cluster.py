"""Run a TF multi-worker cluster where nothing can listen beyond loopback: inside a new network namespace.

TensorFlow's gRPC server always listens on ``0.0.0.0``; started under ``unshare -rn`` (a user and
network namespace of its own), the only interface there is is ``lo``, so every server is reachable
on 127.0.0.1 alone and vanishes with the namespace. Usage (by ``test_tf_distribute.py``)::

    unshare -rn python loopback_cluster.py N TIMEOUT -- python tf_distribute_script.py mwms OUT DATA PHASE

brings ``lo`` up, picks ``N`` free ports on 127.0.0.1, starts ``N`` copies of the command, each with
its ``TF_CONFIG``, and exits with the first non-zero exit code (after printing every output).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import struct
import subprocess
import sys

_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    """Set ``lo`` up (a new network namespace starts with it down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | _IFF_UP))


def free_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def main() -> int:
    n, timeout = int(sys.argv[1]), float(sys.argv[2])
    command = sys.argv[sys.argv.index("--") + 1 :]
    loopback_up()
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(n)]}
    procs = [
        subprocess.Popen(command, env={**os.environ, "TF_CONFIG": json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": i}})},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(n)
    ]
    code = 0
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            sys.stdout.write(out)
            code = code or proc.returncode
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
                code = code or 1
    return code


if __name__ == "__main__":
    sys.exit(main())
