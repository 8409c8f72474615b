#!/usr/bin/env bash
# The training benchmark at full depth on one GPU in bf16: the reference recipe and ours on the same 64 samples,
# samples/s, tokens/s, peak allocated memory and MFU (FLOPs counted by torch's FlopCounterMode in an untimed pass
# over every sample, against the GPU's dense bf16 peak). Stopped after 8 minutes at the latest.
#
#   bash bench/gpu_train.sh [--recipe full] [--samples 128 --pack-tokens 32768] [--json]
#   bash bench/gpu_train.sh --device cpu --dtype fp32 --text-layers 1 --vision-layers 1 --samples 2   # smoke test
#
# The real configs and tokenizer come from $ASSETS (default: ../shared/assets beside the checkout, else
# .bench-assets inside it: `cp -r ../shared/assets .bench-assets` and carry it when the checkout travels to a GPU
# machine without them). Needs torch and transformers >= 5 installed.
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS=${ASSETS:-}
for candidate in ../shared/assets .bench-assets; do
  if [ -z "$ASSETS" ] && [ -f "$candidate/qwen3-0.6b/config.json" ]; then ASSETS=$candidate; fi
done
[ -n "$ASSETS" ] || { echo "no assets: set ASSETS to a folder with qwen3-0.6b/ and smolvlm2-256m-video-instruct/" >&2; exit 2; }
# A GPU image usually has torch and transformers but may lack num2words (transformers' SmolVLM processor needs it):
# its wheel and docopt's are in bench/wheels, installed without any network. smvl itself runs from src/.
python3 -c "import num2words" 2>/dev/null || python3 -m pip install -q --no-index --find-links bench/wheels num2words
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
exec timeout 480 python3 -m smvl bench train --device cuda --dtype bf16 --recipe connector --samples 64 --pack-tokens 16384 --count-flops \
  --vision "$ASSETS/smolvlm2-256m-video-instruct" --text "$ASSETS/qwen3-0.6b" "$@"
