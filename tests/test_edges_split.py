"""``pyloader split`` at the edges: a full disk while writing leaves a complete output or none."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from pyloader_core import JsonLineDataReader, list_files, storage
from pyloader_core.index import INDEX_NAME, load_index
from pyloader_core.tools.cli import main
from pyloader_core.tools.split import split
from pyloader_core.tools.split.writers import HashingRaw


def write_jsonl(path: Path, n: int, start: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": i, "text": "w" * (i % 13)}) + "\n" for i in range(start, start + n)))
    return path


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (hidden ones too) and its SHA-256."""
    out = {}
    for root, _, files in os.walk(directory):
        for f in files:
            p = Path(root, f)
            out[str(p.relative_to(directory))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def full_disk_on_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """index.json's write fails half-way, as on a disk that fills up (the temporary file is left to clean)."""

    def write_bytes(path: str, data: bytes) -> None:
        with open(path + ".partial", "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(storage, "write_bytes", write_bytes)


@pytest.mark.parametrize("shuffle", [False, True])
def test_full_disk_while_index_is_written_leaves_no_output(tmp_path, monkeypatch, shuffle):
    src = write_jsonl(tmp_path / "in.jsonl", 500)
    full_disk_on_index(monkeypatch)
    with pytest.raises(OSError) as info:
        split(str(src), tmp_path / "out", samples_per_chunk=100, shuffle=shuffle)
    assert info.value.errno == errno.ENOSPC
    assert not (tmp_path / "out").exists()
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]  # no staging directory, no partial file


def test_full_disk_while_a_chunk_is_written_leaves_no_output(tmp_path, monkeypatch):
    src = write_jsonl(tmp_path / "in.jsonl", 2000)
    (tmp_path / "tmp").mkdir()
    real = HashingRaw.write
    calls = {"n": 0}

    def write(self, b):
        calls["n"] += 1
        if calls["n"] == 3:
            enospc()
        return real(self, b)

    monkeypatch.setattr(HashingRaw, "write", write)
    with pytest.raises(OSError, match="No space"):
        split(str(src), tmp_path / "out", samples_per_chunk=300, shuffle=True, tmp_dir=str(tmp_path / "tmp"))
    assert calls["n"] == 3
    assert not (tmp_path / "out").exists()
    assert os.listdir(tmp_path / "tmp") == []
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl", "tmp"]


def test_failed_overwrite_keeps_the_earlier_split_intact(tmp_path, monkeypatch):
    src = write_jsonl(tmp_path / "in.jsonl", 500)
    split(str(src), tmp_path / "out", samples_per_chunk=100)
    (tmp_path / "out" / ".keep").write_text("mine")
    before = snapshot(tmp_path / "out")
    assert len(before) == 7  # 5 chunks, index.json, .keep
    full_disk_on_index(monkeypatch)
    with pytest.raises(OSError):
        split(str(src), tmp_path / "out", samples_per_chunk=50, overwrite=True)
    assert snapshot(tmp_path / "out") == before  # the old dataset, byte for byte; nothing staged left


def test_failure_while_chunks_are_moved_in_is_rolled_back(tmp_path, monkeypatch):
    src = write_jsonl(tmp_path / "in.jsonl", 500)
    split(str(src), tmp_path / "out", samples_per_chunk=100)
    before = snapshot(tmp_path / "out")
    real_replace = os.replace
    moves: list[str] = []

    def replace(a, b):
        if ".pyloader-split-" in os.fspath(a) and os.path.dirname(os.fspath(b)) == str(tmp_path / "out"):
            moves.append(os.path.basename(b))
            if len(moves) == 3:  # the third new chunk fails to move in
                enospc()
        return real_replace(a, b)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="No space"):
        split(str(src), tmp_path / "out", samples_per_chunk=60, overwrite=True)
    monkeypatch.undo()
    assert moves[:3] == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]  # the third one failed
    assert moves[3:] == [f"part-0000{i}.jsonl" for i in range(4, -1, -1)] + [INDEX_NAME]  # the old ones back
    assert snapshot(tmp_path / "out") == before


def test_overwrite_replaces_the_earlier_split_and_keeps_other_hidden_files(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", 500)
    split(str(src), tmp_path / "out", samples_per_chunk=100, compression="gzip")
    (tmp_path / "out" / ".keep").write_text("mine")
    result = split(str(src), tmp_path / "out", samples_per_chunk=300, overwrite=True)
    names = sorted(os.listdir(tmp_path / "out"))
    assert names == [".keep", INDEX_NAME, "part-00000.jsonl", "part-00001.jsonl"]  # no old .gz, no staging
    assert result.index_path == str(tmp_path / "out" / INDEX_NAME)
    index = load_index(str(tmp_path / "out"), strict=True)
    assert index is not None and sorted(index.chunks) == ["part-00000.jsonl", "part-00001.jsonl"]
    ids = [i for f in list_files(tmp_path / "out") for i in JsonLineDataReader().read_file(f)[0]["id"]]
    assert ids == list(range(500))


def test_split_into_a_new_nested_directory(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", 10)
    result = split(str(src), tmp_path / "a" / "b" / "out", samples_per_chunk=4)
    assert result.samples == 10
    assert sorted(os.listdir(tmp_path / "a" / "b")) == ["out"]
    assert sorted(os.listdir(tmp_path / "a" / "b" / "out")) == [INDEX_NAME] + [f"part-0000{i}.jsonl" for i in range(3)]


def test_cli_split_on_a_full_disk_exits_1_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", 300)
    full_disk_on_index(monkeypatch)
    rc = main(["split", str(src), "--out", str(tmp_path / "out"), "--samples", "80", "-q"])
    assert rc == 1
    assert "No space left" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]
