#!/usr/bin/env bash
# The training benchmark at full depth on one GPU in bf16: the reference recipe and ours on the same 64 samples,
# samples/s, tokens/s, peak allocated memory and MFU (FLOPs counted by torch's FlopCounterMode on a warm-up
# round, against the GPU's dense bf16 peak). About 3 minutes on an H200; a hard limit of 8.
#
#   bash bench/gpu_train.sh [--recipe full] [--samples 128 --pack-tokens 32768] [--json]
#
# The real configs and tokenizer come from $ASSETS (default: ../shared/assets beside the checkout, else
# .bench-assets inside it: copy ../shared/assets there when the checkout travels to a GPU machine without them).
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS=${ASSETS:-}
for candidate in ../shared/assets .bench-assets; do
  if [ -z "$ASSETS" ] && [ -f "$candidate/qwen3-0.6b/config.json" ]; then ASSETS=$candidate; fi
done
[ -n "$ASSETS" ] || { echo "no assets: set ASSETS to a folder with qwen3-0.6b/ and smolvlm2-256m-video-instruct/" >&2; exit 2; }
python3 -c "import smvl" 2>/dev/null || python3 -m pip install -q -e .
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
exec timeout 480 python3 -m smvl bench train --device cuda --dtype bf16 --recipe connector --samples 64 --pack-tokens 16384 --count-flops \
  --vision "$ASSETS/smolvlm2-256m-video-instruct" --text "$ASSETS/qwen3-0.6b" "$@"
