"""``s3://`` against a real S3 API server on 127.0.0.1 (moto's, started and stopped here), reached
through s3fs with ``storage_options`` (credentials and the endpoint), by threads and process workers."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter

import pytest
from helpers import IdCollator, IdDataset, ids_of

from pyloader_core import DataLoader, JsonLineDataReader, list_files

if not os.environ.get("PYLOADER_REQUIRE_ALL"):
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    pytest.importorskip("boto3")

BUCKET = "pyloader-test"
SIZES = [6, 9, 4, 7, 5]


@pytest.fixture(scope="module")
def s3_server():
    """``moto_server`` bound to 127.0.0.1 only, dummy AWS credentials; stopped when the module ends."""
    saved = {k: os.environ.get(k) for k in os.environ if k.startswith("AWS_")}
    dummy = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # never probe the instance metadata endpoint
        # anything that does not get the endpoint from storage_options fails at once, on loopback
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    os.environ.update(dummy)
    from moto.server import ThreadedMotoServer

    # In this process, on a thread: start() returns once the server is ready (it waits on that event).
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield {"endpoint": f"http://{host}:{port}", "pid": os.getpid(), "port": port}
    finally:
        server.stop()
        for k in dummy:
            os.environ.pop(k, None)
        os.environ.update({k: v for k, v in saved.items() if v is not None})
        import fsspec

        fsspec.AbstractFileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def s3_data(s3_server):
    import boto3

    client = boto3.client(
        "s3", endpoint_url=s3_server["endpoint"], aws_access_key_id="testing",
        aws_secret_access_key="testing", region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    k = 0
    for c, n in enumerate(SIZES):
        rows = []
        for _ in range(n):
            rows.append(json.dumps({"id": k, "input_text": "a b c", "label": k % 2}))
            k += 1
        client.put_object(Bucket=BUCKET, Key=f"prefix/part-{c:05d}.jsonl", Body=("\n".join(rows) + "\n").encode())
    client.put_object(Bucket=BUCKET, Key="prefix/_SUCCESS", Body=b"")  # metadata: skipped
    client.put_object(Bucket=BUCKET, Key="other/part-0.jsonl", Body=b'{"id": -1}\n')  # outside the prefix
    return s3_server


def _options(server) -> dict:
    return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": server["endpoint"], "region_name": "us-east-1"}}


def test_server_listens_on_loopback_only(s3_server):
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    mine = [line for line in out.splitlines() if f"pid={s3_server['pid']}," in line]
    assert mine, out
    for line in mine:
        local = line.split()[3]
        assert local == f"127.0.0.1:{s3_server['port']}", line


def test_listing_with_storage_options(s3_data):
    files = list_files(f"s3://{BUCKET}/prefix/", _options(s3_data))
    assert files == [f"s3://{BUCKET}/prefix/part-{c:05d}.jsonl" for c in range(len(SIZES))]


@pytest.mark.parametrize(
    "workers",
    [
        {"num_workers": 2, "worker_type": "thread"},
        {"num_workers": 2, "worker_type": "process", "start_method": "fork"},
        {"num_workers": 2, "worker_type": "process", "start_method": "spawn"},
    ],
    ids=["threads", "fork", "spawn"],
)
def test_every_sample_exactly_once(s3_data, workers):
    loader = DataLoader(
        JsonLineDataReader(batch_size=4), IdDataset(), IdCollator(), f"s3://{BUCKET}/prefix/",
        shuffle=True, storage_options=_options(s3_data), **workers,
    )
    with loader:
        ids = ids_of(loader)
    assert Counter(ids) == Counter(range(sum(SIZES)))
