#!/usr/bin/env bash
# The README's test command: sets up .venv (the CPU build of torch first, so that pip
# never pulls the CUDA packages) with the test extras, then runs the whole test suite.
# The extras (transformers, diffusers, ...) depend on torch: they are installed with the
# torch already there held by a constraints file, so that no resolver replaces it.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -c "import torch" 2>/dev/null || python -m pip install -q torch==2.13.0
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
python -c "import torch; print(f'torch=={torch.__version__}')" > "$constraints"
python -m pip install -q -c "$constraints" -e ".[tests]"
python -m pytest "$@"
