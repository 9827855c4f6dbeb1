"""``python -m pyloader_core COMMAND ...``: the ``pyloader`` command line (see :mod:`pyloader_core.tools.cli`).

Example::

    python -m pyloader_core inspect data/
"""

import sys

from pyloader_core.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
