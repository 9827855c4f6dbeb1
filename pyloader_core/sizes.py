"""Sizes in bytes, as people write them (``"64MB"``, ``"2GiB"``) and read them."""

from __future__ import annotations

import re

from pyloader_core.errors import ConfigError

__all__ = ["format_size", "parse_size"]

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Bytes from a size like ``"64MB"``, ``"1.5G"``, ``"512k"``, ``"256MiB"`` or ``"1000"``.

    Units are binary: K, M, G, T (with an optional ``B`` or ``iB``) are powers of 1024. The
    result must be a positive whole number of bytes; anything else raises :class:`ConfigError`.

    Example::

        parse_size("64MB")   # 67108864
        parse_size("1.5k")   # 1536
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = _SIZE_RE.match(str(text))
        if m is None:
            raise ConfigError(f"bad size {text!r}: use a number with an optional unit K, M, G or T (e.g. 64MB)")
        number, unit, suffix = m.groups()
        if suffix and suffix.lower() == "ib" and not unit:
            raise ConfigError(f"bad size {text!r}: use a number with an optional unit K, M, G or T (e.g. 64MB)")
        value = int(float(number) * _UNITS[unit.lower()])
    if value < 1:
        raise ConfigError(f"bad size {text!r}: must be at least 1 byte")
    return value


def format_size(n: float) -> str:
    """A byte count for people: ``format_size(67108864) == "64.0 MiB"``.

    Example::

        format_size(1536)  # '1.5 KiB'
    """
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover
