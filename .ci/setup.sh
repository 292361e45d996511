#!/usr/bin/env bash
# Creates .venv and installs neurolns with its test extra. torch is installed
# first and pinned, so pip takes the local CPU wheel instead of a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
pip_install() {
    # the machine's pip configuration warns once per missing local index entry: hide only that noise
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location" >&2)
}
pip_install "torch==2.13.0"
pip_install -e ".[test]"
.venv/bin/python -c "import neurolns, numba, torch, brian2; print('neurolns', neurolns.__version__, '| numba', numba.__version__, '| torch', torch.__version__, '| brian2', brian2.__version__)"
