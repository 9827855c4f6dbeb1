#!/usr/bin/env bash
# The one command for the demo on a fresh machine (Python 3.11 + pip): creates .venv-demo,
# installs PyLoader (core + orjson) into it and runs examples/demo.py; args go to the demo.
#
#   bash scripts/demo.sh
#   bash scripts/demo.sh --worker-type thread --epochs 3 --keep /tmp/pyloader-demo
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
VENV=.venv-demo

if [ ! -x "$VENV/bin/python" ]; then
    echo "+ creating $VENV with $PYTHON" >&2
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet -c constraints.txt -e '.[fast]'

# Not `exec`: a fresh process, so the demo's RUSAGE_CHILDREN peak counts its workers, not pip.
"$VENV/bin/python" examples/demo.py "$@"
