"""Argument types and ``--format`` choices of the ``pyloader`` command line.

Example::

    parser.add_argument("--chunk-size", type=size_arg)      # "64MB" -> 67108864
    parser.add_argument("--workers", type=workers_arg)       # "auto" or a whole number >= 0
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from pyloader_core.errors import ConfigError
from pyloader_core.sizes import parse_size

_N = TypeVar("_N", int, float)

__all__ = [
    "add_format_option",
    "add_output_options",
    "nonneg_float",
    "nonneg_int",
    "positive_float",
    "positive_int",
    "queue_arg",
    "read_formats",
    "size_arg",
    "split_format_names",
    "workers_arg",
]


def read_formats() -> list[str]:
    """What ``--format`` accepts for reading: every registered format."""
    from pyloader_core.formats import FORMATS

    return list(FORMATS)


def split_format_names() -> list[str]:
    """What ``split --format`` accepts: the formats ``split`` can frame."""
    from pyloader_core.formats import split_formats

    return split_formats()


def size_arg(text: str) -> int:
    """A size with binary units (``64MB``, ``512K``), in bytes."""
    try:
        return parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parsed(text: str, convert: Callable[[str], _N], what: str) -> _N:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def _whole(text: str, minimum: int) -> int:
    value = _parsed(text, int, "a whole number")
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """A whole number, at least 1."""
    return _whole(text, 1)


def nonneg_int(text: str) -> int:
    """A whole number, at least 0."""
    return _whole(text, 0)


def _int_or_auto(text: str, minimum: int) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    value = _parsed(text, int, "a whole number or 'auto'")
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum} or 'auto', got {value}")
    return value


def workers_arg(text: str) -> int | str:
    """``auto``, or a number of workers (at least 0)."""
    return _int_or_auto(text, 0)


def queue_arg(text: str) -> int | str:
    """``auto``, or a queue size (at least 1)."""
    return _int_or_auto(text, 1)


def positive_float(text: str) -> float:
    """A number greater than 0."""
    value = _parsed(text, float, "a number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def nonneg_float(text: str) -> float:
    """A number, at least 0."""
    value = _parsed(text, float, "a number")
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


def add_format_option(p: argparse.ArgumentParser, verb: str) -> None:
    """``--format``: one of the registered formats, for every file (``verb``: what is done with them)."""
    p.add_argument(
        "--format", choices=read_formats(), help=f"{verb} every file as this format (default: from each file's name)"
    )


def add_output_options(p: argparse.ArgumentParser, what: str, quiet: bool = True) -> None:
    """``--json`` (print ``what`` as one JSON object) and, with ``quiet``, ``-q/--quiet``."""
    p.add_argument("--json", action="store_true", help=f"print the {what} as one JSON object")
    if quiet:
        p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
