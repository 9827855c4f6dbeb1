"""The ``pyloader`` argument parser: global options, then one subcommand from each command module.

Example::

    args = build_parser().parse_args(["inspect", "data/"])
    args.func(args)  # the command's run()
"""

from __future__ import annotations

import argparse
from typing import Any

from pyloader_core.tools.cli import bench, index, inspect, split
from pyloader_core.version import __version__

__all__ = ["PROG", "Parser", "UsageError", "build_parser"]

PROG = "pyloader"

#: The command modules, in the order ``--help`` lists them; each has ``add_parser(sub)`` and ``run(args)``.
COMMANDS = (split, index, inspect, bench)


class UsageError(Exception):
    """A command line argparse rejected.

    Example::

        raise UsageError("argument --seed: invalid int value: 'x'")
    """


class Parser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose errors are one-line :class:`UsageError` exceptions.

    Example::

        Parser(prog="pyloader").parse_args(["--bogus"])  # raises UsageError
    """

    def error(self, message: str) -> Any:  # one line, no usage dump
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> Parser:
    """The whole ``pyloader`` parser."""
    parser = Parser(
        prog=PROG,
        description="PyLoader's toolkit: split big datasets into chunks, index, inspect and benchmark them.",
        epilog="Sizes take binary units: 64MB = 64 MiB, also K, G, T (e.g. 512K, 1.5G). "
        "Run 'pyloader COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"pyloader {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log progress (-vv: debug)")
    parser.add_argument("--traceback", action="store_true", help="show the traceback of unexpected errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser
