"""Output signatures: inferring one from a batch, and checking later batches against it.

A batch is what the collator returns: a dict of arrays (the usual case), or any nest of dicts,
tuples and lists whose leaves are numpy arrays, tf tensors, or values ``np.asarray`` turns into
arrays. Leaves are named by their path (``"input_ids"``, ``"features/x"``, ``"0"``) in messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from pyloader_core.errors import PyLoaderError

__all__ = [
    "SignatureMismatchError",
    "VariableDims",
    "check_batch",
    "infer_signature",
    "normalize_variable_dims",
    "to_tf_dtype",
]

logger = logging.getLogger(__name__)

#: Which inner dimensions (1 = the first one after the batch dimension) vary between batches, per
#: key path: ``{"input_ids": [1]}``; a bare key (``["input_ids"]``, or ``None`` as the dims) makes all of
#: its inner dims vary.
VariableDims = Mapping[str, Iterable[int] | None] | Iterable[str]

_STRING_KINDS = "USO"


class SignatureMismatchError(PyLoaderError, ValueError):
    """A batch does not match the dataset's ``output_signature``.

    The message names the key, the expected dtype and shape, and the actual ones. Inside a
    ``tf.data`` pipeline TensorFlow re-raises it as ``tf.errors.InvalidArgumentError`` whose message
    carries this text. ``key``, ``expected`` and ``actual`` hold the parts.

    Example::

        try:
            check_batch({"x": np.zeros((2, 5), np.int64)}, {"x": tf.TensorSpec((None, 4), tf.int64)})
        except SignatureMismatchError as err:
            err.key  # 'x'
    """

    def __init__(self, message: str, key: str | None = None, expected: str | None = None, actual: str | None = None):
        super().__init__(message)
        self.key, self.expected, self.actual = key, expected, actual

    def __reduce__(self):  # keep the parts when pickled
        return (type(self), (self.args[0], self.key, self.expected, self.actual))


# ----------------------------------------------------------------------------------- structure


def _path(prefix: str, key: Any) -> str:
    return f"{prefix}/{key}" if prefix else str(key)


def _leaves(nest: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, leaf) pairs of a nest of dicts, tuples and lists; dict keys in sorted order."""
    if isinstance(nest, Mapping):
        for key in sorted(nest, key=str):
            yield from _leaves(nest[key], _path(prefix, key))
    elif _is_sequence(nest):
        for i, item in enumerate(nest):
            yield from _leaves(item, _path(prefix, i))
    else:
        yield prefix, nest


def _is_sequence(value: Any) -> bool:
    """Tuples are nests; a list is one only when it holds dicts, arrays or tensors (else it is one leaf's values)."""
    if isinstance(value, tuple):
        return True
    if not isinstance(value, list) or not value:
        return False
    return all(isinstance(v, (Mapping, np.ndarray, tf.Tensor)) for v in value)


def _map_structure(fn: Callable[[str, Any], Any], nest: Any, prefix: str = "") -> Any:
    if isinstance(nest, Mapping):
        return {key: _map_structure(fn, nest[key], _path(prefix, key)) for key in nest}
    if _is_sequence(nest):
        items = [_map_structure(fn, item, _path(prefix, i)) for i, item in enumerate(nest)]
        return type(nest)(*items) if hasattr(nest, "_fields") else tuple(items)
    return fn(prefix, nest)


def _structure_names(nest: Any) -> list[str]:
    return [path or "<batch>" for path, _ in _leaves(nest)]


# ----------------------------------------------------------------------------------- dtypes


def _as_array(key: str, value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, tf.Tensor):
        return value.numpy()
    if isinstance(value, (tf.RaggedTensor, tf.SparseTensor)):
        raise SignatureMismatchError(
            f"key {key or '<batch>'!r} is a {type(value).__name__}; make_tf_dataset yields dense tensors only "
            "(pad it in the collator, e.g. TFCollator pads ragged lists)",
            key,
        )
    try:
        return np.asarray(value)
    except ValueError as exc:  # ragged nested lists
        raise SignatureMismatchError(
            f"key {key or '<batch>'!r} is not rectangular ({exc}); pad it in the collator (TFCollator does)", key
        ) from None


def _strings_ok(arr: np.ndarray, full: bool) -> bool:
    """Whether an object array holds text only (``full``: every element; else the first one)."""
    if arr.size == 0:
        return True
    if full:
        return all(isinstance(v, (str, bytes)) for v in arr.flat)
    return isinstance(arr.flat[0], (str, bytes))


def to_tf_dtype(arr: np.ndarray, key: str = "") -> tf.DType:
    """The TensorFlow dtype for ``arr``: text (``U``/``S`` arrays, object arrays of str/bytes) is ``tf.string``.

    Raises :class:`SignatureMismatchError` for object arrays of anything else.

    Example::

        to_tf_dtype(np.array(["a", "b"], dtype=object))  # tf.string
        to_tf_dtype(np.zeros(3, np.int32))              # tf.int32
    """
    if arr.dtype.kind in "US":
        return tf.string
    if arr.dtype.kind == "O":
        if not _strings_ok(arr, full=True):
            bad = next(v for v in arr.flat if not isinstance(v, (str, bytes)))
            raise SignatureMismatchError(
                f"key {key or '<batch>'!r} holds Python objects of type {type(bad).__name__}; only text (str/bytes) "
                "object arrays map to tf.string: convert the values in the collator (TFCollator does)",
                key,
            )
        return tf.string
    try:
        return tf.as_dtype(arr.dtype)
    except TypeError:
        raise SignatureMismatchError(
            f"key {key or '<batch>'!r} has dtype {arr.dtype}, which TensorFlow lacks", key
        ) from None


def _describe(dtype: Any, shape: Any) -> str:
    name = dtype.name if isinstance(dtype, tf.DType) else str(dtype)
    dims = tuple(shape.as_list()) if isinstance(shape, tf.TensorShape) and shape.rank is not None else tuple(shape)
    return f"{name} of shape {dims}"


# ----------------------------------------------------------------------------------- inference


def normalize_variable_dims(variable_dims: VariableDims | None) -> dict[str, set[int] | None]:
    """``variable_dims`` as ``{key: dims}``, where ``None`` as dims means every inner dim.

    Example::

        normalize_variable_dims(["text"])             # {'text': None}
        normalize_variable_dims({"input_ids": [1]})   # {'input_ids': {1}}
    """
    if variable_dims is None:
        return {}
    if isinstance(variable_dims, str):
        return {variable_dims: None}
    if isinstance(variable_dims, Mapping):
        return {str(k): None if dims is None else {int(d) for d in dims} for k, dims in variable_dims.items()}
    return {str(k): None for k in variable_dims}


def infer_signature(batch: Any, variable_dims: VariableDims | None = None) -> Any:
    """The ``output_signature`` for batches like ``batch``: one :class:`tf.TensorSpec` per leaf.

    The dtype is the leaf's own (text becomes ``tf.string``); the first (batch) dimension is
    ``None``, and so is every inner dimension that ``variable_dims`` lists for that key; the other
    inner dimensions are fixed to what ``batch`` has. The structure (dicts, tuples) is kept; a 0-d
    leaf keeps shape ``()``.

    Example::

        infer_signature({"input_ids": np.zeros((32, 16), np.int64), "text": np.array(["a"] * 32, dtype=object)},
                        variable_dims={"input_ids": [1]})
        # {'input_ids': TensorSpec(shape=(None, None), dtype=tf.int64, name=None),
        #  'text': TensorSpec(shape=(None,), dtype=tf.string, name=None)}
    """
    variable = normalize_variable_dims(variable_dims)
    known = set(_structure_names(batch))
    unknown = sorted(set(variable) - known)
    if unknown:
        logger.warning("variable_dims names keys the batch lacks: %s (batch keys: %s)", unknown, sorted(known))

    def spec(key: str, value: Any) -> tf.TensorSpec:
        arr = _as_array(key, value)
        dtype = to_tf_dtype(arr, key)
        if arr.ndim == 0:
            return tf.TensorSpec((), dtype)
        dims = variable.get(key or "<batch>", set())
        shape = [None] + [None if dims is None or i in dims else int(n) for i, n in enumerate(arr.shape[1:], 1)]
        return tf.TensorSpec(shape, dtype)

    return _map_structure(spec, batch)


# ----------------------------------------------------------------------------------- checking


def _mismatch(key: str, spec: tf.TensorSpec, arr: np.ndarray, actual_dtype: Any, why: str) -> SignatureMismatchError:
    expected = _describe(spec.dtype, spec.shape)
    actual = _describe(actual_dtype, arr.shape)
    name = key or "<batch>"
    hint = ""
    if why == "shape" and spec.shape.rank == arr.ndim:
        pairs = enumerate(zip(spec.shape.as_list(), arr.shape))
        dims = [i for i, (want, got) in pairs if want is not None and want != got]
        hint = (
            "; a dimension that varies between batches must be None in output_signature "
            f"(e.g. make_tf_dataset(..., variable_dims={{{name!r}: {dims}}}) or pass output_signature)"
        )
    elif why == "dtype":
        hint = "; cast it in the collator (TFCollator gives stable dtypes) or pass output_signature"
    return SignatureMismatchError(
        f"batch does not match output_signature: key {name!r}: expected {expected}, got {actual}{hint}",
        name,
        expected,
        actual,
    )


def _check_leaf(key: str, spec: Any, value: Any) -> np.ndarray:
    if not isinstance(spec, tf.TensorSpec):
        raise SignatureMismatchError(
            f"key {key or '<batch>'!r}: make_tf_dataset supports tf.TensorSpec leaves only, got {type(spec).__name__}",
            key,
        )
    arr = _as_array(key, value)
    if spec.dtype == tf.string:
        if arr.dtype.kind not in _STRING_KINDS or arr.dtype.kind == "O" and not _strings_ok(arr, full=False):
            actual = type(arr.flat[0]).__name__ + " objects" if arr.dtype.kind == "O" else arr.dtype
            raise _mismatch(key, spec, arr, actual, "dtype")
    else:
        want = spec.dtype.as_numpy_dtype
        if arr.dtype != want:
            if arr.dtype.kind in _STRING_KINDS or not np.can_cast(arr.dtype, want, "safe"):
                raise _mismatch(key, spec, arr, arr.dtype, "dtype")
            arr = arr.astype(want)
    if not spec.shape.is_compatible_with(arr.shape):
        raise _mismatch(key, spec, arr, to_tf_dtype(arr, key) if arr.dtype.kind != "O" else "string", "shape")
    return arr


def check_batch(batch: Any, signature: Any) -> Any:
    """``batch`` as numpy arrays in ``signature``'s structure, or :class:`SignatureMismatchError`.

    Every key of the signature must be in the batch and no other; each leaf must have the spec's
    dtype (a safe numeric cast, such as int32 to int64, is done; anything else is an error) and a
    shape compatible with the spec's (``None`` matches any size).

    Example::

        sig = {"x": tf.TensorSpec((None, 4), tf.float32)}
        check_batch({"x": np.ones((8, 4), np.float32)}, sig)   # passes
        check_batch({"x": np.ones((8, 5), np.float32)}, sig)   # SignatureMismatchError naming 'x'
    """
    want = _structure_names(signature)
    got = _structure_names(batch)
    if want != got:
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        detail = ", ".join(
            part for part in (f"missing {missing}" if missing else "", f"unexpected {extra}" if extra else "") if part
        ) or f"order/nesting differs: expected {want}, got {got}"
        raise SignatureMismatchError(
            f"batch does not match output_signature: keys differ ({detail}); expected keys {want}",
            ", ".join(missing + extra) or None,
            str(want),
            str(got),
        )
    specs = dict(_leaves(signature))
    return _map_structure(lambda key, value: _check_leaf(key, specs[key], value), batch)
