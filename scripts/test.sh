#!/usr/bin/env bash
# The one command that sets everything up and runs the whole test suite on a fresh machine
# (Python 3.11 + pip): creates .venv-tox with tox in it, then runs `tox -e all`, which builds an
# env with PyTorch (CPU, pinned in constraints.txt), TensorFlow and every optional extra.
#
#   bash scripts/test.sh                 # whole suite
#   bash scripts/test.sh -x -k shuffle   # extra args go to pytest (replacing the default -q -ra)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
VENV=.venv-tox

if [ ! -x "$VENV/bin/tox" ]; then
    echo "+ creating $VENV with $PYTHON" >&2
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet 'tox>=4.20'
fi

# With no args, pass no `--`: tox treats an empty `--` as "posargs given" and drops the defaults.
if [ "$#" -gt 0 ]; then
    exec "$VENV/bin/tox" -e all -- "$@"
fi
exec "$VENV/bin/tox" -e all
