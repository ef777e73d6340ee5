#!/usr/bin/env bash
# Wheels of the pipeline's packages that a torch-only GPU image lacks (diffusers, open_clip, peft,
# transformers, jsonschema and what they need beyond torch), for Python 3.12 on x86-64, into
# .gpu_wheels/ for scripts/gpu_check.sh. Pins are envs/requirements.txt's.
set -euo pipefail
cd "$(dirname "$0")/.."
pin() { grep -E "^$1==" envs/requirements.txt | head -1; }
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
  --implementation cp -d .gpu_wheels "$(pin diffusers)" "$(pin transformers)" "$(pin peft)" "$(pin open_clip_torch)" \
  tokenizers==0.23.3 ftfy==6.3.1 wcwidth==0.9.4 jsonschema==4.26.0 referencing==0.37.0 jsonschema-specifications==2025.9.1 huggingface_hub==2.4.0 \
  rpds-py==2026.9.1
du -sh .gpu_wheels
