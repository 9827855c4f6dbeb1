"""The TFRecord reader: files written by TensorFlow itself, read without it; CRCs, counts, loader, inspect, split."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pyloader_core import DataLoader
from pyloader_core.errors import DataFormatError
from pyloader_core.formats import FORMATS, get_reader
from pyloader_core.formats.tfrecord import _crc32c_py, crc32c, decode_example, masked_crc32c
from pyloader_core.tools.cli import main
from pyloader_core.tools.split import split

N_FILES, PER_FILE = 3, 20

# Written once per module by TensorFlow in a child process (the reader never imports it).
_WRITER = textwrap.dedent(
    """
    import os, sys
    import tensorflow as tf

    root, n_files, per_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

    def example(i):
        f = tf.train.Feature
        return tf.train.Example(features=tf.train.Features(feature={
            "id": f(int64_list=tf.train.Int64List(value=[i])),
            "x": f(float_list=tf.train.FloatList(value=[i / 2])),
            "vec": f(float_list=tf.train.FloatList(value=[i, i + 0.5, -1.0])),
            "big": f(int64_list=tf.train.Int64List(value=[-i, 2**62, -(2**63)])),
            "text": f(bytes_list=tf.train.BytesList(value=[("s%d é" % i).encode()])),
            "tags": f(bytes_list=tf.train.BytesList(value=[b"a", b"b"][: i % 3])),
        })).SerializeToString()

    os.makedirs(os.path.join(root, "data"))
    for c in range(n_files):
        with tf.io.TFRecordWriter(os.path.join(root, "data", "c%d.tfrecord" % c)) as w:
            for i in range(c * per_file, (c + 1) * per_file):
                w.write(example(i))
    os.makedirs(os.path.join(root, "gz"))
    opts = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(os.path.join(root, "gz", "c.tfrecord.gz"), opts) as w:
        for i in range(7):
            w.write(example(i))
    """
)


@pytest.fixture(scope="module")
def tf_files(tmp_path_factory):
    tf_python = os.environ.get("PYLOADER_TF_PYTHON", sys.executable)
    probe = subprocess.run([tf_python, "-c", "import tensorflow"], capture_output=True, timeout=300)
    if probe.returncode != 0:
        if os.environ.get("PYLOADER_REQUIRE_ALL"):
            pytest.fail("tensorflow is needed to write the TFRecord fixtures")
        pytest.skip("tensorflow is needed to write the TFRecord fixtures")
    root = tmp_path_factory.mktemp("tfrecord")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [tf_python, "-c", _WRITER, str(root), str(N_FILES), str(PER_FILE)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def _frame(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _unpacked_example(i: int) -> bytes:
    """An Example whose lists use the unpacked encoding (valid protobuf; TensorFlow writes packed)."""
    ints = _ld(3, b"".join(_varint(1 << 3 | 0) + _varint(v) for v in (i, -5)))
    floats = _ld(2, b"".join(_varint(1 << 3 | 5) + struct.pack("<f", v) for v in (0.25,)))
    feats = _ld(1, _ld(1, b"id") + _ld(2, ints)) + _ld(1, _ld(1, b"f") + _ld(2, floats))
    return _ld(1, feats)


def test_crc32c_known_value():
    assert _crc32c_py(b"123456789") == 0xE3069283
    assert crc32c(b"123456789") == 0xE3069283


def test_reader_does_not_import_tensorflow_or_protobuf():
    code = (
        "import sys, pyloader_core.formats.tfrecord, pyloader_core.formats; "
        "bad = [m for m in sys.modules if m.startswith(('tensorflow', 'google.protobuf'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_read_file_values_and_count(tf_files):
    reader = get_reader("tfrecord")
    path = str(tf_files / "data" / "c1.tfrecord")
    cols, n = reader.read_file(path)
    assert n == PER_FILE == reader.count_samples(path)
    ids = list(range(PER_FILE, 2 * PER_FILE))
    assert cols["id"].dtype == np.int64 and cols["id"].tolist() == ids
    assert cols["x"].dtype == np.float32 and cols["x"].tolist() == [i / 2 for i in ids]
    assert [v.tolist() for v in cols["vec"]] == [[i, i + 0.5, -1.0] for i in ids]
    assert [v.tolist() for v in cols["big"]] == [[-i, 2**62, -(2**63)] for i in ids]
    assert cols["text"] == [f"s{i} é".encode() for i in ids]
    assert cols["tags"] == [[b"a", b"b"][: i % 3] for i in ids]
    cols, _ = get_reader("tfrecord", features=["text", "id"], utf8=True, squeeze=False).read_file(path)
    assert list(cols) == ["text", "id"] and cols["text"][0] == [f"s{PER_FILE} é"]
    assert [v.tolist() for v in cols["id"]] == [[i] for i in ids]


def test_gzip_file(tf_files):
    path = str(tf_files / "gz" / "c.tfrecord.gz")
    reader = get_reader("tfrecord")
    cols, n = reader.read_file(path)
    assert n == 7 == reader.count_samples(path) and cols["id"].tolist() == list(range(7))


def test_unpacked_repeated_fields(tmp_path):
    path = tmp_path / "u.tfrecord"
    path.write_bytes(b"".join(_frame(_unpacked_example(i)) for i in range(3)))
    cols, n = get_reader("tfrecord").read_file(str(path))
    assert n == 3 and [v.tolist() for v in cols["id"]] == [[0, -5], [1, -5], [2, -5]]
    assert cols["f"].tolist() == [0.25] * 3
    assert decode_example(_unpacked_example(7))["id"] == ("int64", [7, -5])


def _corrupt(tf_files, tmp_path, offset_in_record2: int) -> str:
    data = bytearray((tf_files / "data" / "c0.tfrecord").read_bytes())
    first = struct.unpack_from("<Q", data, 0)[0] + 16
    data[first + offset_in_record2] ^= 0xFF
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(bytes(data))
    return str(path)


def test_bad_data_crc_names_file_and_record(tf_files, tmp_path):
    path = _corrupt(tf_files, tmp_path, 20)  # inside record 2's data
    with pytest.raises(DataFormatError, match=r"bad\.tfrecord, record 2: corrupt TFRecord: the data's CRC"):
        get_reader("tfrecord").read_file(path)
    assert get_reader("tfrecord").count_samples(path) == PER_FILE  # counting checks the length CRCs only


def test_bad_length_crc(tf_files, tmp_path):
    path = _corrupt(tf_files, tmp_path, 1)  # record 2's length
    for call in (get_reader("tfrecord").read_file, get_reader("tfrecord").count_samples):
        with pytest.raises(DataFormatError, match=r"record 2: corrupt TFRecord: the length's CRC"):
            call(path)


@pytest.mark.parametrize("cut", [3, 10, 200])
def test_truncated_file(tf_files, tmp_path, cut):
    data = (tf_files / "data" / "c0.tfrecord").read_bytes()
    path = tmp_path / "cut.tfrecord"
    path.write_bytes(data[:-cut])
    for call in (get_reader("tfrecord").read_file, get_reader("tfrecord").count_samples):
        with pytest.raises(DataFormatError, match=r"cut\.tfrecord, record \d+: truncated TFRecord"):
            call(str(path))


def test_not_an_example_is_skippable(tmp_path):
    path = tmp_path / "mixed.tfrecord"
    path.write_bytes(_frame(_unpacked_example(0)) + _frame(b"\xff\xff\xff") + _frame(_unpacked_example(2)))
    with pytest.raises(DataFormatError, match="record 2: not a tf.train.Example"):
        get_reader("tfrecord").read_file(str(path))
    loader = DataLoader("tfrecord", None, None, str(path), num_epoch=1, on_error="skip")
    ids = [int(v[0]) for b in loader for v in b["id"]]
    assert ids == [0, 2]


WORKERS = [dict(num_workers=2), dict(num_workers=2, worker_type="process")]


@pytest.mark.parametrize("mode", WORKERS, ids=["threads", "processes"])
def test_loader_yields_every_sample_once(tf_files, mode):
    reader = get_reader("tfrecord", batch_size=7)
    loader = DataLoader(reader, None, None, str(tf_files / "data"), num_epoch=1, shuffle=True, **mode)
    ids = [int(i) for batch in loader for i in batch["id"]]
    assert sorted(ids) == list(range(N_FILES * PER_FILE))
    assert len(loader) == -(-N_FILES * PER_FILE // 7)


def test_inspect_first_record(tf_files, capsys):
    assert main(["inspect", str(tf_files / "data"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["formats"] == {"tfrecord": N_FILES} and report["samples"] == N_FILES * PER_FILE
    assert report["schema"]["id"] == "int64" and report["schema"]["vec"] == "list[float]"
    assert report["first_record"]["id"] == 0
    assert FORMATS["tfrecord"].first_record(str(tf_files / "data" / "c0.tfrecord"))[1]["text"] == "s0 é".encode()


@pytest.mark.parametrize("opts", [{}, dict(shuffle=True, seed=3, compression="gzip")], ids=["plain", "shuffled-gzip"])
def test_split_round_trip(tf_files, tmp_path, opts):
    out = tmp_path / "out"
    result = split([str(tf_files / "data")], str(out), samples_per_chunk=16, **opts)
    assert result.format == "tfrecord" and result.samples == N_FILES * PER_FILE
    reader = get_reader("tfrecord")
    ids = []
    for chunk in result.chunks:
        assert chunk.name.endswith(".tfrecord.gz" if opts else ".tfrecord")
        cols, n = reader.read_file(str(out / chunk.name))
        assert n == chunk.samples == reader.count_samples(str(out / chunk.name))
        ids.extend(cols["id"].tolist())
    assert sorted(ids) == list(range(N_FILES * PER_FILE))
    assert (ids == list(range(N_FILES * PER_FILE))) == (not opts)
