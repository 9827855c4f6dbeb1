"""The :class:`DataCollator` (batch assembly step) and the built-in :class:`NumpyDataCollator`."""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from pyloader_core.reader import Columns

__all__ = ["DataCollator", "NumpyDataCollator"]


class DataCollator(abc.ABC):
    """Turns one batch (a dict of equally long lists or arrays) into model inputs.

    Runs in the consumer's thread, once per batch; keep it cheap (heavy work belongs in
    :meth:`Dataset.batch_encode`, which runs in the workers).

    Numeric columns that ``batch_encode`` returns as rectangular lists (``[[1, 2], [3, 4]]``, or a list
    of ints or floats) arrive here as numpy arrays: the workers convert them where the chunk is made,
    so nothing large is pickled or converted again per batch. Strings, ragged rows and mixed kinds stay
    lists. Set ``keep_lists = True`` on a collator that needs Python lists (it then pays for them).

    Example::

        class PadCollator(DataCollator):
            def collate_batch(self, batch):
                width = max(len(x) for x in batch["ids"])
                return {"ids": np.array([x + [0] * (width - len(x)) for x in batch["ids"]])}
    """

    #: ``True``: numeric list columns reach :meth:`collate_batch` as lists, not arrays (see above).
    keep_lists: bool = False

    @abc.abstractmethod
    def collate_batch(self, batch: Columns) -> dict[str, Any]:
        """Collate ``batch`` (dict of lists/arrays, ``batch_size`` long) into the model's inputs."""


class NumpyDataCollator(DataCollator):
    """Every key to a numpy array (``np.asarray``: no copy when it already is one).

    ``label`` becomes ``int64`` for integer labels and ``float32`` for real ones. Keys whose values
    are ragged (sequences of different lengths) are padded with ``pad_value`` to the longest. Bytes
    become an object array of the same ``bytes`` (numpy's ``S`` dtype would drop trailing NULs).

    Example::

        NumpyDataCollator().collate_batch({"x": [[1, 2], [3]], "label": [0, 1]})
        # {'x': array([[1, 2], [3, 0]]), 'label': array([0, 1])}
    """

    def __init__(self, pad_value: int | float = 0) -> None:
        self.pad_value = pad_value

    def collate_batch(self, batch: Columns) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, values in batch.items():
            if values is None:
                continue
            arr = values if isinstance(values, np.ndarray) else self._to_array(values)
            if key == "label" and arr.dtype.kind in "iub":
                arr = arr.astype(np.int64, copy=False)
            elif key == "label" and arr.dtype.kind == "f":
                arr = arr.astype(np.float32, copy=False)
            out[key] = arr
        return out

    def _to_array(self, values: Any) -> np.ndarray:
        if len(values) and isinstance(values[0], (bytes, bytearray)):
            # numpy's fixed-width bytes ("S") drop trailing NUL bytes: binary payloads (images, TFRecord
            # features) would come back shorter. An object array keeps every value as it is.
            out = np.empty(len(values), dtype=object)
            out[:] = list(values)
            return out
        try:
            return np.asarray(values)
        except ValueError:  # ragged: pad to the longest
            width = max(len(v) for v in values)
            first = next((v for v in values if len(v)), [self.pad_value])
            dtype = np.asarray(first).dtype
            out = np.full((len(values), width), self.pad_value, dtype=dtype)
            for row, v in enumerate(values):
                out[row, : len(v)] = v
            return out
