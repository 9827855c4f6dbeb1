"""A newcomer's rough edges (issue 14): the progress bar's end, worker names in notes, option typos,
and a missing ``__main__`` guard under spawn."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import FailingReader, IdDataset, IdReader, write_id_chunks

from pyloader_core import ConfigError, DataLoader
from pyloader_core.runtime import engine

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def data(tmp_path):
    return write_id_chunks(tmp_path / "data", [10, 10, 10])  # 30 samples: batches of 4 end short


@pytest.fixture
def bars(monkeypatch):
    """The progress bars the engine makes."""
    pytest.importorskip("tqdm")
    made = []

    class Recorded(engine.ProgressBar):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(engine, "ProgressBar", Recorded)
    return made


@pytest.mark.parametrize("options", [{}, {"num_epoch": 2, "num_workers": 1}])
def test_progress_bar_ends_at_100_percent(data, bars, options):
    loader = DataLoader(IdReader(batch_size=4), IdDataset(), None, str(data), progress=True, **options)
    samples = sum(len(b["id"]) for b in loader)
    (bar,) = bars
    assert bar._bar.n == bar._bar.total == samples == 30 * options.get("num_epoch", 1)
    assert bar._closed


def test_progress_bar_broken_off_stays_where_it_was(data, bars):
    loader = DataLoader(IdReader(batch_size=4), IdDataset(), None, str(data), progress=True)
    it = iter(loader)
    next(it)
    it.close()
    (bar,) = bars
    assert bar._bar.n == 4 and bar._bar.total == 32 and bar._closed  # not finished: no 100%


@pytest.mark.parametrize(
    "options, who",
    [
        ({"num_workers": 0}, "the consumer thread"),
        ({"num_workers": 1, "worker_type": "thread"}, "worker thread 0"),
        ({"num_workers": 1, "worker_type": "process", "start_method": "fork"}, "worker process 0"),
        # spawn: the consumer reads the first chunk itself while the workers start
        ({"num_workers": 1, "worker_type": "process", "start_method": "spawn"}, "the consumer thread"),
    ],
)
def test_error_notes_name_the_consumer_thread_or_the_worker(data, options, who):
    with pytest.raises(KeyError) as info:
        list(DataLoader(FailingReader("chunk000", batch_size=4), IdDataset(), None, str(data), **options))
    note = info.value.__notes__[0]
    assert f"{who})" in note and "worker -1" not in "".join(info.value.__notes__)


def test_option_typos_suggest_the_closest_name(data):
    with pytest.raises(ConfigError) as info:
        DataLoader(IdReader(batch_size=4), IdDataset(), None, str(data), num_worker=2)
    assert str(info.value).startswith("unknown option 'num_worker'; did you mean 'num_workers'?")
    with pytest.raises(ConfigError, match=r"unknown option 'shufle_buffer'; did you mean 'shuffle_buffer'\?"):
        DataLoader(IdReader(batch_size=4), IdDataset(), None, str(data), shufle_buffer=2)
    with pytest.raises(ConfigError, match=r"unknown option 'zzz' \(valid options: "):
        DataLoader(IdReader(batch_size=4), IdDataset(), None, str(data), zzz=1)


def test_torch_dataset_gets_the_suggestion_too(data):
    pytest.importorskip("torch")
    from pyloader_torch import TorchChunkDataset

    with pytest.raises(ConfigError, match="did you mean 'drop_last'"):
        TorchChunkDataset(IdReader(batch_size=4), IdDataset(), None, str(data), drop_lats=True)


def test_missing_main_guard_under_spawn_is_one_clear_error(tmp_path, data):
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path[:0] = [{str(REPO)!r}, {str(REPO / "tests")!r}]
            from helpers import IdDataset, IdReader
            from pyloader_core import DataLoader

            loader = DataLoader(IdReader(batch_size=4), IdDataset(), None, {str(data)!r},
                                num_workers=2, worker_type="process", start_method="spawn")
            for batch in loader:  # no `if __name__ == "__main__":`
                pass
            print("done")
            """
        )
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    err = proc.stderr
    assert proc.returncode != 0 and "done" not in proc.stdout
    last = err.strip().splitlines()[-1]
    assert last.startswith("pyloader_core.errors.ConfigError: start_method='spawn' re-imports your script"), err
    assert "if __name__ == '__main__':" in last and "start_method='fork'" in last
    assert "bootstrapping phase" not in err and err.count("Traceback") == 1, err
    assert len(err.splitlines()) < 40, err  # the parent's own traceback only, not multiprocessing's
