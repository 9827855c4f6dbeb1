"""Running the ``pyloader`` command line: parse, set up logging, run the command, report errors in one line.

Example::

    sys.exit(main(["inspect", "data/"]))
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

from pyloader_core.errors import PyLoaderError
from pyloader_core.tools.cli.parser import PROG, UsageError, build_parser
from pyloader_core.tools.cli.report import emit_error

__all__ = ["main"]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if (
        isinstance(exc, OSError)
        and not isinstance(exc, PyLoaderError)
        and exc.filename
        and str(exc.filename) not in text
    ):
        text += f": {exc.filename}"
    if isinstance(exc, (KeyError, MemoryError)):
        text = f"{type(exc).__name__}: {text}"
    return text


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging(verbose: int) -> Any:
    """Log ``pyloader_core`` messages to stderr for this command; returns the undo function."""
    log = logging.getLogger("pyloader_core")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("pyloader: %(levelname)s: %(message)s"))
    saved = (log.level, log.propagate)
    log.addHandler(handler)
    log.setLevel(logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG)
    log.propagate = False

    def undo() -> None:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]

    return undo


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pyloader`` command line; returns the exit status (0 ok, 1 failed, 2 bad usage).

    Example::

        main(["inspect", "data/"])       # prints the report, returns 0
        main(["split", "missing.jsonl", "--out", "x"])  # prints one error line, returns 1
    """
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except UsageError as exc:
        emit_error(f"{PROG}: error: {exc}")
        return 2
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 2
    if args.command is None:
        emit_error(f"{PROG}: error: choose a command: split, index, inspect or bench (see '{PROG} --help')")
        return 2
    undo_logging = _setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        emit_error(f"{PROG}: interrupted")
        return 130
    except BrokenPipeError:  # `pyloader inspect ... | head`
        return 1
    except (PyLoaderError, OSError, ValueError, ImportError, MemoryError, KeyError) as exc:
        if args.traceback:
            raise
        emit_error(f"{PROG}: error: {_one_line(exc)}")
        return 1
    except Exception as exc:
        if args.traceback:
            raise
        emit_error(f"{PROG}: error: unexpected {type(exc).__name__}: {_one_line(exc)} (rerun with --traceback)")
        return 1
    finally:
        undo_logging()

