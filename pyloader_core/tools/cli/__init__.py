"""The ``pyloader`` command: ``split``, ``index``, ``inspect`` and ``bench``.

One module per command (:mod:`.split`, :mod:`.index`, :mod:`.inspect`, :mod:`.bench`: each
``add_parser(sub)`` and ``run(args)``), the parser in :mod:`.parser`, argument types in :mod:`.args`,
output helpers in :mod:`.report`, and :func:`main` in :mod:`.run`.

Run it as ``pyloader COMMAND ...`` (the console script) or ``python -m pyloader_core COMMAND ...``;
``pyloader COMMAND --help`` describes each command. Errors print one line,
``pyloader: error: ...``, on stderr and exit with 2 (bad usage) or 1 (anything else), never a
traceback (``--traceback`` shows it for unexpected errors).

Example::

    pyloader split big.jsonl --out data/ --chunk-size 64MB --shuffle --compression zstd
    pyloader inspect data/
    pyloader bench data/ --workers 4 --step-rate 20
"""

from pyloader_core.tools.cli.run import main

__all__ = ["main"]
