from __future__ import annotations

import os

import pytest

from pyloader_core import NoFilesError, list_files


@pytest.fixture
def tree(tmp_path):
    for rel in ["b/2.jsonl", "b/1.jsonl", "a.jsonl", ".hidden", "_SUCCESS", "index.json", ".git/x", "_tmp/y", "c/d/3.jsonl"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("{}\n")
    return tmp_path


def rel(paths, root):
    return [os.path.relpath(p, root) for p in paths]


def test_directory_is_walked_sorted_skipping_metadata(tree):
    assert rel(list_files(tree), tree) == ["a.jsonl", "b/1.jsonl", "b/2.jsonl", "c/d/3.jsonl"]


def test_glob_and_recursive_glob(tree):
    assert rel(list_files(str(tree / "b" / "*.jsonl")), tree) == ["b/1.jsonl", "b/2.jsonl"]
    assert rel(list_files(str(tree / "**" / "*.jsonl")), tree) == ["a.jsonl", "b/1.jsonl", "b/2.jsonl", "c/d/3.jsonl"]


def test_list_keeps_order_and_expands_dirs(tree):
    got = list_files([tree / "c", str(tree / "a.jsonl")])
    assert rel(got, tree) == ["c/d/3.jsonl", "a.jsonl"]


def test_missing_path_and_empty_dir_are_clear_errors(tmp_path):
    with pytest.raises(NoFilesError, match="does not exist"):
        list_files(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoFilesError, match="no data files"):
        list_files(tmp_path / "empty")
    with pytest.raises(NoFilesError, match="no data files"):
        list_files(str(tmp_path / "*.parquet"))
