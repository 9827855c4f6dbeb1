"""The :class:`TFCollator`: batches as arrays with the same dtypes every time, ready for ``tf.data``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from pyloader_core.collator import DataCollator, NumpyDataCollator
from pyloader_core.errors import ConfigError, DataFormatError
from pyloader_core.reader import Columns

__all__ = ["TFCollator"]

logger = logging.getLogger(__name__)

_INT_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


class TFCollator(DataCollator):
    """Wraps a core collator and gives every key a stable dtype that maps to a TensorFlow dtype.

    After ``inner`` (default :class:`~pyloader_core.NumpyDataCollator`, which pads ragged numeric
    lists to the longest) has run, integers become ``int_dtype``, floats ``float_dtype``, booleans
    stay ``bool``, and text (``str``/``bytes`` values, numpy ``U``/``S`` arrays) becomes an object
    array of ``str``/``bytes``, which is ``tf.string`` in TensorFlow (a ``U`` array would change its
    dtype with its longest string from batch to batch). Ragged lists of strings are padded with
    ``string_pad`` here, before ``inner`` sees them.

    Keys whose values were ragged (sequences of different lengths, so padded to a width that changes
    from batch to batch) are remembered in :attr:`variable_keys`; :func:`~pyloader_tf.make_tf_dataset`
    makes their inner dimensions ``None`` when it infers the signature.

    Args:
        inner: the collator that runs first (default ``NumpyDataCollator(pad_value)``).
        int_dtype: ``np.int64`` (default) or ``np.int32``.
        float_dtype: ``np.float32`` (default), ``np.float16`` or ``np.float64``.
        as_tensors: return ``tf.Tensor`` values instead of numpy arrays (for use outside ``tf.data``;
            :func:`make_tf_dataset` does not need it).
        pad_value: padding of ragged numeric lists when ``inner`` is the default.
        string_pad: padding of ragged lists of strings.

    Example::

        collator = TFCollator(int_dtype=np.int32)
        collator.collate_batch({"ids": [[1, 2], [3]], "text": ["a", "bc"], "y": [0.5, 1.0]})
        # {'ids': array([[1, 2], [3, 0]], dtype=int32), 'text': array(['a', 'bc'], dtype=object),
        #  'y': array([0.5, 1. ], dtype=float32)}
    """

    def __init__(
        self,
        inner: DataCollator | None = None,
        *,
        int_dtype: Any = np.int64,
        float_dtype: Any = np.float32,
        as_tensors: bool = False,
        pad_value: int | float = 0,
        string_pad: str = "",
    ) -> None:
        if inner is not None and not isinstance(inner, DataCollator):
            raise ConfigError(f"inner must be a pyloader_core.DataCollator, got {type(inner).__name__}")
        self.int_dtype = np.dtype(int_dtype)
        self.float_dtype = np.dtype(float_dtype)
        if self.int_dtype not in _INT_DTYPES:
            raise ConfigError(f"int_dtype must be int32 or int64, got {self.int_dtype}")
        if self.float_dtype not in _FLOAT_DTYPES:
            raise ConfigError(f"float_dtype must be float16, float32 or float64, got {self.float_dtype}")
        self.inner = inner if inner is not None else NumpyDataCollator(pad_value)
        self.as_tensors = bool(as_tensors)
        self.string_pad = string_pad
        self._variable: set[str] = set()

    @property
    def variable_keys(self) -> frozenset[str]:
        """Keys seen ragged so far (their padded width varies between batches)."""
        return frozenset(self._variable)

    def collate_batch(self, batch: Columns) -> dict[str, Any]:
        """Collate ``batch`` with ``inner``, then cast every key to its stable dtype."""
        prepared: dict[str, Any] = {}
        for key, values in batch.items():
            if values is not None and not isinstance(values, np.ndarray) and _is_ragged(values):
                self._variable.add(key)
                if _holds_text(values):
                    values = self._pad_strings(values)
            prepared[key] = values
        out = self.inner.collate_batch(prepared)
        if not isinstance(out, dict):
            raise DataFormatError(f"TFCollator's inner collator must return a dict, got {type(out).__name__}")
        result = {key: self._stable(key, value) for key, value in out.items()}
        if self.as_tensors:
            import tensorflow as tf

            return {key: tf.convert_to_tensor(value) for key, value in result.items()}
        return result

    def _pad_strings(self, values: Sequence[Sequence[Any]]) -> np.ndarray:
        width = max(len(v) for v in values)
        out = np.full((len(values), width), self.string_pad, dtype=object)
        for row, v in enumerate(values):
            out[row, : len(v)] = list(v)
        return out

    def _stable(self, key: str, value: Any) -> np.ndarray:
        arr = value.numpy() if hasattr(value, "numpy") and not isinstance(value, np.ndarray) else np.asarray(value)
        kind = arr.dtype.kind
        if kind == "b":
            return arr
        if kind in "iu":
            return arr.astype(self.int_dtype, copy=False)
        if kind == "f":
            return arr.astype(self.float_dtype, copy=False)
        if kind in "US":
            return arr.astype(object)
        if kind == "O":
            if arr.size and not all(isinstance(v, (str, bytes)) for v in arr.flat):
                bad = next(v for v in arr.flat if not isinstance(v, (str, bytes)))
                raise DataFormatError(
                    f"TFCollator: key {key!r} holds {type(bad).__name__} values ({bad!r:.60}); only numbers and "
                    "text (str/bytes) become TensorFlow tensors: convert them in Dataset.batch_encode"
                )
            return arr
        raise DataFormatError(f"TFCollator: key {key!r} has dtype {arr.dtype}, which has no stable TensorFlow dtype")


def _is_ragged(values: Sequence[Any]) -> bool:
    """Whether ``values`` is a sequence of sequences (not strings) of different lengths."""
    if not len(values):
        return False
    first = values[0]
    if isinstance(first, (str, bytes)) or not hasattr(first, "__len__"):
        return False
    width = len(first)
    return any(len(v) != width for v in values)


def _holds_text(values: Sequence[Sequence[Any]]) -> bool:
    return any(isinstance(item, (str, bytes)) for v in values for item in v[:1])
