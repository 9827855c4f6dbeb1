"""``pyloader_torch.make_dataloader`` and the check for torch's default batching of our batches."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="pyloader_torch needs PyTorch (pip install 'pyloader-chunks[torch]')")

from torch.utils.data import DataLoader as TorchDataLoader  # noqa: E402
from torch_helpers import SIZES, batch_ids, flat, write_chunks  # noqa: E402

from pyloader_core import ConfigError, JsonLineDataReader  # noqa: E402
from pyloader_torch import TorchChunkDataset, make_dataloader  # noqa: E402


@pytest.fixture
def data(tmp_path):
    ids = write_chunks(tmp_path / "data", SIZES)
    return tmp_path / "data", ids


def test_make_dataloader_yields_the_batches_unbatched(data):
    data_dir, ids = data
    loader = make_dataloader(JsonLineDataReader(batch_size=8), None, None, data_dir)
    assert isinstance(loader, TorchDataLoader) and loader.batch_size is None
    assert isinstance(loader.dataset, TorchChunkDataset)
    batches = list(loader)
    assert batches[0]["x"].shape == (8, 2) and batches[0]["id"].shape == (8,)
    assert sorted(flat(batch_ids(batches))) == ids
    assert len(batches) == len(loader.dataset)


def test_make_dataloader_with_torch_workers_and_options(data):
    data_dir, ids = data
    loader = make_dataloader(
        JsonLineDataReader(batch_size=8), None, None, data_dir, torch_num_workers=2, shuffle=True, random_seed=3
    )
    assert loader.num_workers == 2
    assert sorted(flat(batch_ids(loader))) == ids


def test_make_dataloader_stateful(data):
    pytest.importorskip("torchdata")
    from torchdata.stateful_dataloader import StatefulDataLoader

    data_dir, ids = data
    loader = make_dataloader(JsonLineDataReader(batch_size=8), None, None, data_dir, stateful=True)
    assert isinstance(loader, StatefulDataLoader)
    it = iter(loader)
    first = [next(it) for _ in range(3)]
    state = loader.state_dict()
    rest = list(it)
    again = make_dataloader(JsonLineDataReader(batch_size=8), None, None, data_dir, stateful=True)
    again.load_state_dict(state)
    assert batch_ids(again) == batch_ids(rest)
    assert sorted(flat(batch_ids(first + rest))) == ids


def test_make_dataloader_option_typo_and_forbidden_torch_options(data):
    data_dir, _ = data
    with pytest.raises(ConfigError, match="unknown option 'num_worker'; did you mean 'num_workers'"):
        make_dataloader(JsonLineDataReader(batch_size=8), None, None, data_dir, num_worker=2)
    with pytest.raises(ConfigError, match="may not set 'batch_size'"):
        make_dataloader(JsonLineDataReader(batch_size=8), None, None, data_dir, torch_options={"batch_size": 4})


@pytest.mark.parametrize("torch_workers", [0, 1])
@pytest.mark.parametrize("batch_size", [{}, {"batch_size": 4}])
def test_torch_default_batching_is_refused_with_the_fix(data, torch_workers, batch_size):
    data_dir, _ = data
    ds = TorchChunkDataset(JsonLineDataReader(batch_size=8), None, None, data_dir)
    loader = TorchDataLoader(ds, num_workers=torch_workers, **batch_size)  # batch_size=1 by default
    with pytest.raises(ConfigError, match=r"batch_size=None.*make_dataloader"):
        next(iter(loader))


def test_batch_size_none_by_hand_still_works(data):
    data_dir, ids = data
    ds = TorchChunkDataset(JsonLineDataReader(batch_size=8), None, None, data_dir)
    assert sorted(flat(batch_ids(TorchDataLoader(ds, batch_size=None)))) == ids
    assert sorted(flat(batch_ids(ds))) == ids  # iterated directly
    assert isinstance(next(iter(ds))["id"], torch.Tensor)
