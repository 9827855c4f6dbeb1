"""The one epoch cursor both adapters use: set_epoch, one more epoch per iteration, resumed epochs, envelopes."""

from __future__ import annotations

import numpy as np
import pytest

from pyloader_core import ConfigError
from pyloader_core.runtime.epochs import EpochCursor, envelope, opened


@pytest.mark.parametrize("table", [None, "array"])
def test_each_iteration_runs_the_next_epoch_from_set_epoch(table):
    cursor = EpochCursor(np.zeros(4, dtype=np.int64) if table == "array" else [0, 0, 0, 0])
    assert [cursor.claim() for _ in range(3)] == [0, 1, 2] and cursor.next_epoch == 3
    cursor.set_epoch(7)
    assert cursor.next_epoch == 7
    # Two participants (torch workers) of one iteration both run epoch 7; the next iteration runs 8.
    assert cursor.claim(0, 2) == 7 and cursor.claim(1, 2) == 7
    # Fewer participants next time: the idle one's counter moved with participant 0, so none lags.
    assert cursor.claim(0, 1) == 8 and cursor.claim(1, 2) == 9


def test_a_resumed_iteration_reenters_its_epoch_and_the_next_follows_on():
    cursor = EpochCursor()
    cursor.claim()
    assert cursor.claim(resumed=5) == 5 and cursor.next_epoch == 6


def test_bad_epochs_and_too_many_participants_are_config_errors():
    cursor = EpochCursor()
    for bad in (-1, True, 1.5):
        with pytest.raises(ConfigError, match="epoch must be an int"):
            cursor.set_epoch(bad)
    with pytest.raises(ConfigError, match="at most 1 participants"):
        cursor.claim(0, 2)


def test_envelope_round_trip_and_a_fresh_start():
    assert opened(envelope(3, {"version": 2})) == (3, {"version": 2})
    assert opened(envelope(None)) is None and opened(None) is None
    with pytest.raises(ConfigError, match="needs 'epoch' and 'loader'"):
        opened({"epoch": 1})
