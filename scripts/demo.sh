#!/usr/bin/env bash
# Set up a virtual environment in .venv (once) and run the skarchetype demo.
#
#   bash scripts/demo.sh [OUT_DIR]      # the report goes to OUT_DIR (default: demo-report)
#
# Re-runs skip the set-up unless setup.cfg changed. torch is pinned and installed first:
# left to pip's resolver, torch can bring gigabytes of CUDA libraries. On a machine where
# pip would do that, point it at the CPU builds first:
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/demo.sh
set -euo pipefail

TORCH_VERSION="2.13.0"
out_dir="$(realpath -m "${1:-demo-report}")"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
python="$venv/bin/python"
stamp="$venv/.skarchetype-setup"

cd "$repo"
if [[ ! -x "$python" ]]; then
    echo "[demo.sh] creating the virtual environment $venv"
    python3 -m venv "$venv"
fi

if ! "$python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    echo "[demo.sh] installing torch $TORCH_VERSION"
    "$python" -m pip install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==$TORCH_VERSION"
fi

wanted="$(sha256sum setup.cfg | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
    echo "[demo.sh] installing skarchetype with its plotting extra"
    "$python" -m pip install --quiet -e ".[plots]"
    echo "$wanted" > "$stamp"
fi

"$python" -m skarchetype demo --out "$out_dir"
