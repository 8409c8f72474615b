#!/usr/bin/env bash
# The training benchmark at full depth on one GPU in bf16: the reference recipe and ours on the same 64 samples,
# samples/s, tokens/s, peak allocated memory and MFU (FLOPs counted by torch's FlopCounterMode in an untimed pass
# over every sample, against the GPU's dense bf16 peak). Stopped after 8 minutes at the latest.
#
#   bash bench/gpu_train.sh [--recipe full] [--samples 128 --pack-tokens 32768] [--json]
#   bash bench/gpu_train.sh --device cpu --dtype fp32 --text-layers 1 --vision-layers 1 --samples 2   # smoke test
#
# The real configs and tokenizer: $ASSETS, ../shared/assets or .bench-assets (bench/gpu_env.sh). Needs torch and
# transformers >= 5 installed.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh
exec timeout 480 python3 -m smvl bench train --device cuda --dtype bf16 --recipe connector --samples 64 --pack-tokens 16384 --count-flops \
  --vision "$ASSETS/smolvlm2-256m-video-instruct" --text "$ASSETS/qwen3-0.6b" "$@"
