"""Tests of :mod:`pyloader_core.runtime.progress` (the ``progress=True`` bar)."""

from __future__ import annotations

import io
import sys

import pytest

from pyloader_core.runtime import progress
from pyloader_core.runtime.progress import ProgressBar, check_available


def _bar(total, out):
    pytest.importorskip("tqdm")
    return ProgressBar(total, "train", file=out, mininterval=0)


def test_counts_samples_and_shows_epoch_and_queue_depth():
    out = io.StringIO()
    bar = _bar(100, out)
    bar.update(samples=32, batches=1, epoch=1, in_flight=4)
    bar.update(samples=32, batches=1, epoch=1, in_flight=3)
    assert (bar.samples, bar.batches) == (64, 2)
    assert bar.postfix == "epoch=1, queue=3"
    bar.update(samples=36, batches=1, epoch=2, in_flight=0)
    bar.close()
    bar.close()  # idempotent
    text = out.getvalue()
    assert "train" in text and "100/100" in text and "samples/s" in text
    assert "epoch=2, queue=0" in text


def test_unknown_total_and_context_manager():
    out = io.StringIO()
    with _bar(None, out) as bar:
        for _ in range(3):
            bar.update(10, 1, 0, 2)
    assert bar.samples == 30
    assert "30" in out.getvalue()


def test_missing_tqdm_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match=r"pip install 'pyloader-chunks\[progress\]'"):
        check_available()
    with pytest.raises(ImportError, match=r"pip install 'pyloader-chunks\[progress\]'"):
        ProgressBar(10, "x")


def test_check_available_passes_with_tqdm():
    pytest.importorskip("tqdm")
    check_available()
    assert progress.__all__ == ["ProgressBar", "check_available"]
