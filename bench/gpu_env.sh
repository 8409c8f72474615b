# Sourced by the GPU benchmarks (bench/gpu_*.sh), from the checkout's root: finds the real configs and tokenizer,
# makes sure num2words imports, and runs smvl from src/.
#
# Assets: $ASSETS, else ../shared/assets beside the checkout, else .bench-assets inside it (`cp -r ../shared/assets
# .bench-assets` and carry it when the checkout travels to a GPU machine without them).
ASSETS=${ASSETS:-}
for candidate in ../shared/assets .bench-assets; do
  if [ -z "$ASSETS" ] && [ -f "$candidate/qwen3-0.6b/config.json" ]; then ASSETS=$candidate; fi
done
[ -n "$ASSETS" ] || { echo "no assets: set ASSETS to a folder with qwen3-0.6b/ and smolvlm2-256m-video-instruct/" >&2; exit 2; }
# A GPU image usually has torch and transformers but may lack num2words (transformers' SmolVLM processor needs it):
# its wheel and docopt's are in bench/wheels, installed without any network.
python3 -c "import num2words" 2>/dev/null || python3 -m pip install -q --no-index --find-links bench/wheels num2words
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
