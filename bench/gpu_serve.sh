#!/usr/bin/env bash
# The server benchmark on one GPU: the real pair (SmolVLM2-256M's tower + Qwen3-0.6B, full depth, random weights
# from the real configs and tokenizer), spliced in bf16, served by `smvl serve --max-batch 32` and measured by
# `smvl bench serve` (image + text requests, 64 forced tokens each, concurrency 1, 8 and 32).
#
#   bash bench/gpu_serve.sh [--requests 64] [--json]
#   DEVICE=cpu DTYPE=fp32 LAYERS=1 bash bench/gpu_serve.sh --concurrency 1,2 --requests 2   # smoke test
#
# Assets: $ASSETS, ../shared/assets or .bench-assets (bench/gpu_env.sh). Needs torch, transformers >= 5,
# fastapi, uvicorn and openai.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh
DEVICE=${DEVICE:-cuda} DTYPE=${DTYPE:-bf16}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 -m smvl.bench.random_sources "$ASSETS" "$WORK/sources" ${LAYERS:+--layers "$LAYERS"} >/dev/null
python3 -m smvl splice --vision "$WORK/sources/vision" --text "$WORK/sources/text" --out "$WORK/model" --dtype bf16 >/dev/null
timeout 420 python3 -m smvl bench serve "$WORK/model" --device "$DEVICE" --dtype "$DTYPE" --max-batch 32 \
  --concurrency 1,8,32 --requests 64 --max-tokens 64 "$@"
