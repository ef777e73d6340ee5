#!/usr/bin/env bash
# The GPU check (scripts/gpu_check.py) on a GPU machine whose Python already holds torch but not the
# rest of the stack, and that cannot reach PyPI: wheels fetched beforehand by scripts/gpu_wheels.sh
# into .gpu_wheels/ (git-ignored; carry it along) are installed first, then the check writes its figures.
#   bash scripts/gpu_check.sh results/bench/gpu.json
#   FAMILY=sdxl bash scripts/gpu_check.sh results/bench/gpu_sdxl.json
#   FAMILY=flux DTYPE=bfloat16 bash scripts/gpu_check.sh results/bench/gpu_flux.json
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results/bench/gpu.json}"
if [ -d .gpu_wheels ]; then
  python3 -m pip install -q --no-index --no-deps .gpu_wheels/*.whl
fi
export HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 scripts/gpu_check.py --out "$out" --dtype "${DTYPE:-float16}" --family "${FAMILY:-sd}"
