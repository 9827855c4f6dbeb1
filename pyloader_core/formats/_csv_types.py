"""The CSV reader's column types: one grammar decides int64 / float64 / bool / string on both paths.

Not a format module (the registry skips names that start with ``_``): :mod:`.csv` uses it.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

__all__ = [
    "KINDS",
    "UseStdlib",
    "arrow_convert",
    "arrow_infer",
    "arrow_modules",
    "drift_message",
    "infer_kind",
    "is_kind",
    "to_kind",
]


# -- typed columns ----------------------------------------------------------------------------
#
# One grammar decides a column's type on both paths (pyarrow and the standard library), so they
# agree by construction: the same regular expressions are matched by ``re`` and by Arrow's RE2.

#: The column types :class:`CsvDataReader` infers, by name.
KINDS = ("int64", "float64", "bool", "string")

_INT_PATTERN = r"[+-]?[0-9]+"
_FLOAT_PATTERN = (
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|inf|Inf|INF|infinity|Infinity|INFINITY|nan|NaN|NAN)"
)
_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")
_INT = re.compile(_INT_PATTERN)
_FLOAT = re.compile(_FLOAT_PATTERN)
_BOOLS = frozenset(_TRUE + _FALSE)
_TRUES = frozenset(_TRUE)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _fits_int64(v: str) -> bool:
    return len(v) < 19 or _INT64_MIN <= int(v) <= _INT64_MAX


def infer_kind(values: list[str]) -> str:
    """The type of a column of strings: ``int64``, ``float64``, ``bool`` or ``string``.

    Empty cells are missing values: a column of ints with an empty cell is ``float64`` (``NaN``
    there), as is an int column with a value beyond int64; a bool column with an empty cell, and a
    column of nothing but empty cells, are ``string``.
    """
    present = [v for v in values if v]
    if not present:
        return "string"
    empty = len(present) < len(values)
    if all(_INT.fullmatch(v) for v in present):
        return "int64" if not empty and all(_fits_int64(v) for v in present) else "float64"
    if all(_FLOAT.fullmatch(v) for v in present):
        return "float64"
    if not empty and all(v in _BOOLS for v in present):
        return "bool"
    return "string"


def is_kind(v: str, kind: str) -> bool:
    """Whether the cell ``v`` is a value of a column of ``kind`` (an empty cell is NaN in float64)."""
    if kind == "int64":
        return bool(_INT.fullmatch(v)) and _fits_int64(v)
    if kind == "float64":
        return not v or bool(_FLOAT.fullmatch(v))
    if kind == "bool":
        return v in _BOOLS
    return True


def to_kind(values: list[str], kind: str) -> Any:
    """``values`` (each of ``kind``) as a numpy array, or the list itself for ``string``."""
    if kind == "int64":
        return np.array([int(v) for v in values], dtype=np.int64)
    if kind == "float64":
        return np.array([float(v) if v else np.nan for v in values], dtype=np.float64)
    if kind == "bool":
        return np.array([v in _TRUES for v in values], dtype=np.bool_)
    return values


def drift_message(name: str, value: str, kind: str, source: str) -> str:
    if kind == "int64" and (not value or _FLOAT.fullmatch(value)):
        hint = (
            f"an int64 column does not widen to float64 after the chunk its type was fixed on: "
            f"pass converters={{{name!r}: float}}"
        )
    else:
        hint = f"pass converters={{{name!r}: ...}} to read it as something else, or infer_types=False"
    shown = "an empty cell" if not value else repr(value)
    return f"column {name!r}: {shown} is not {kind}, the type inferred for it from {source}; {hint}"


def arrow_modules() -> tuple[Any, Any, Any] | None:
    """``(pyarrow, pyarrow.csv, pyarrow.compute)``, or ``None`` where pyarrow is not installed."""
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.csv
    except ImportError:
        return None
    return pyarrow, pyarrow.csv, pyarrow.compute


class UseStdlib(Exception):
    """The pyarrow path cannot give exactly what the standard-library path gives: use that."""


def arrow_infer(pa: Any, pc: Any, col: Any) -> str:
    """:func:`infer_kind` on an Arrow string column."""
    n = len(col)
    empty = pc.equal(col, "")
    n_empty = pc.sum(empty).as_py() or 0
    if n_empty == n:
        return "string"

    def all_match(pattern: str) -> bool:
        return bool(pc.all(pc.or_(empty, pc.match_substring_regex(col, "^(?:" + pattern + ")$"))).as_py())

    if all_match(_INT_PATTERN):
        if n_empty:
            return "float64"
        try:
            _arrow_int64(pa, pc, col)
        except pa.ArrowInvalid:  # beyond int64
            return "float64"
        return "int64"
    if all_match(_FLOAT_PATTERN):
        return "float64"
    if not n_empty and pc.all(pc.is_in(col, value_set=pa.array(sorted(_BOOLS)))).as_py():
        return "bool"
    return "string"


def _arrow_int64(pa: Any, pc: Any, col: Any) -> Any:
    return pc.cast(pc.replace_substring_regex(col, pattern=r"^\+", replacement=""), pa.int64())


def arrow_convert(pa: Any, pc: Any, col: Any, kind: str) -> Any:
    """``col`` as ``kind`` (a list of str, or a numpy array); :class:`UseStdlib` where a value is not."""
    if kind == "string":
        return col.to_pylist()
    empty = pc.equal(col, "")
    if kind == "int64":
        if not pc.all(pc.match_substring_regex(col, "^(?:" + _INT_PATTERN + ")$")).as_py():
            raise UseStdlib
        try:
            return _arrow_int64(pa, pc, col).to_numpy()
        except pa.ArrowInvalid:
            raise UseStdlib from None
    if kind == "float64":
        ok = pc.or_(empty, pc.match_substring_regex(col, "^(?:" + _FLOAT_PATTERN + ")$"))
        if not pc.all(ok).as_py():
            raise UseStdlib
        nulled = pc.if_else(empty, pa.scalar(None, pa.string()), col)
        return pc.cast(nulled, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    if not pc.all(pc.is_in(col, value_set=pa.array(sorted(_BOOLS)))).as_py():
        raise UseStdlib
    return pc.is_in(col, value_set=pa.array(sorted(_TRUES))).to_numpy(zero_copy_only=False)
