"""Listing at the edges: symlink loops, aliases, hard links, FIFOs and sockets named like chunks."""

from __future__ import annotations

import builtins
import logging
import os
import socket
from pathlib import Path

import pytest
from helpers import IdCollator, IdDataset, ids_of, write_id_chunks

from pyloader_core import DataLoader, JsonLineDataReader, NoFilesError, list_files
from pyloader_core.storage import listing as files_module


def rel(paths: list[str], root: Path) -> list[str]:
    return [os.path.relpath(p, root) for p in paths]


def test_symlink_loop_lists_each_file_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = write_id_chunks(tmp_path / "data", [3, 4])
    (data / "sub").mkdir()
    (data / "sub" / "c.jsonl").write_text('{"id": 7, "input_text": "1", "label": 0}\n')
    os.symlink("..", data / "sub" / "up")  # data/sub/up -> data: a loop
    os.symlink(data, data / "self")  # data/self -> data: another
    with caplog.at_level(logging.WARNING, logger="pyloader_core.storage.listing"):
        found = list_files(data)
    assert rel(found, data) == ["chunk000.jsonl", "chunk001.jsonl", "sub/c.jsonl"]
    assert "symlink loop" in caplog.text and str(data) in caplog.text
    loader = DataLoader(JsonLineDataReader(batch_size=2), IdDataset(), IdCollator(), str(data))
    assert sorted(ids_of(loader)) == [0, 1, 2, 3, 4, 5, 6, 7]  # every sample once


def test_recursive_glob_through_a_loop_lists_each_file_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = write_id_chunks(tmp_path / "data", [2])
    os.symlink("..", data / "loop")  # glob follows it until the OS refuses (ELOOP)
    with caplog.at_level(logging.WARNING, logger="pyloader_core.storage.listing"):
        found = list_files(str(data / "**" / "*.jsonl"))
    assert rel(found, data) == ["chunk000.jsonl"]
    assert "left out" in caplog.text


def test_aliases_and_hard_links_are_listed_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = write_id_chunks(tmp_path / "data", [2, 2])
    os.symlink(data / "chunk000.jsonl", data / "zz-alias.jsonl")
    os.link(data / "chunk001.jsonl", data / "zz-hard.jsonl")
    (data / "dir").mkdir()
    os.symlink(data / "dir", data / "dir2")  # the same directory twice
    (data / "dir" / "x.jsonl").write_text("{}\n")
    with caplog.at_level(logging.WARNING, logger="pyloader_core.storage.listing"):
        found = list_files(data)
    # the first name in the sorted walk wins (so the links, named to sort last, are left out)
    assert rel(found, data) == ["chunk000.jsonl", "chunk001.jsonl", "dir/x.jsonl"]
    assert "left out 2 name(s)" in caplog.text and "zz-alias.jsonl" in caplog.text
    assert "dir2" in caplog.text  # not walked twice
    # an explicit list is taken as given
    assert list_files([str(data / "chunk000.jsonl"), str(data / "zz-alias.jsonl")]) == [
        str(data / "chunk000.jsonl"),
        str(data / "zz-alias.jsonl"),
    ]


@pytest.fixture
def specials(tmp_path: Path):
    """A data dir holding one chunk, a FIFO and a Unix socket named like chunks, and a symlink to /dev/null."""
    data = write_id_chunks(tmp_path / "data", [3])
    os.mkfifo(data / "fifo.jsonl")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock_path = data / "sock.jsonl"
    if len(str(sock_path)) >= 100:  # AF_UNIX paths are short
        pytest.skip("tmp path too long for a Unix socket")
    sock.bind(str(sock_path))
    os.symlink("/dev/null", data / "null.jsonl")
    try:
        yield data
    finally:
        sock.close()


def test_fifos_sockets_and_devices_are_skipped_unopened(specials: Path, monkeypatch, caplog) -> None:
    data = specials
    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, *args, **kwargs):
        opened.append(os.fspath(file))
        return real_open(file, *args, **kwargs)

    def spy_os_open(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    with caplog.at_level(logging.WARNING, logger="pyloader_core.storage.listing"):
        found = list_files(data)
        globbed = list_files(str(data / "*.jsonl"))
    monkeypatch.undo()
    assert rel(found, data) == rel(globbed, data) == ["chunk000.jsonl"]
    assert not [p for p in opened if "fifo" in p or "sock" in p or "null" in p]  # never opened
    text = caplog.text
    assert "fifo.jsonl: it is a FIFO" in text and "sock.jsonl: it is a socket" in text
    assert "null.jsonl: it is a character device" in text
    loader = DataLoader(JsonLineDataReader(batch_size=2), IdDataset(), IdCollator(), str(data))
    assert ids_of(loader) == [0, 1, 2]  # a full pass: nothing hangs on the FIFO


def test_a_fifo_named_directly_is_an_error(specials: Path) -> None:
    with pytest.raises(NoFilesError, match="is a FIFO") as info:
        list_files(specials / "fifo.jsonl")
    assert "fifo.jsonl" in str(info.value) and "never opens" in str(info.value)
    with pytest.raises(NoFilesError, match="socket"):
        list_files([specials / "chunk000.jsonl", specials / "sock.jsonl"])


def test_listing_stats_each_file_once(tmp_path: Path, monkeypatch) -> None:
    """The loop and FIFO checks cost one stat per file and per directory, no more."""
    data = write_id_chunks(tmp_path / "data", [1] * 30)
    (data / "sub").mkdir()
    for i in range(5):
        (data / "sub" / f"{i}.jsonl").write_text("{}\n")
    calls: list[str] = []
    real_stat = os.stat

    def counting_stat(path, *args, **kwargs):
        calls.append(os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(files_module.os, "stat", counting_stat)
    assert len(list_files(data)) == 35
    monkeypatch.undo()
    ours = [c for c in calls if c.endswith(".jsonl")]
    assert len(ours) == len(set(ours)) == 35
