"""Splice sources with random weights from the real configs: the real widths, key layout and tokenizer, no download.

What a benchmark or a rehearsal needs where the hub is out of reach: `root/vision` (a SmolVLM checkpoint whose
own text model is cut to one small layer, since the splice drops it) and `root/text` (the LLM), both loadable by
`smvl splice`. Depth can be cut for a CPU; left alone it is the real one, so a GPU benchmark times the real model.

    python -m smvl.bench.random_sources ASSETS OUT [--layers N]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

TEXT_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "generation_config.json")
VISION_FILES = ("preprocessor_config.json", "processor_config.json")
ASSET_DIRS = {"vision": "smolvlm2-256m-video-instruct", "text": "qwen3-0.6b"}


def build_random_sources(assets: Path, root: Path, layers: int | None = None, seed: int = 0) -> Path:
    """bf16 checkpoints under root/vision and root/text; `layers` cuts both the LLM and the vision tower."""
    import torch
    from transformers import AutoConfig, Qwen3ForCausalLM, SmolVLMForConditionalGeneration

    assets, root = Path(assets), Path(root)
    torch.manual_seed(seed)
    overrides = {"num_hidden_layers": layers, "layer_types": ["full_attention"] * layers} if layers else {}
    text = Qwen3ForCausalLM(AutoConfig.from_pretrained(assets / ASSET_DIRS["text"], **overrides)).to(torch.bfloat16)
    text.save_pretrained(root / "text")
    del text
    for name in TEXT_FILES:
        shutil.copy(assets / ASSET_DIRS["text"] / name, root / "text" / name)

    vlm_cfg = json.loads((assets / ASSET_DIRS["vision"] / "config.json").read_text())
    if layers:
        vlm_cfg["vision_config"]["num_hidden_layers"] = layers
    vlm_cfg["text_config"].update(num_hidden_layers=1, vocab_size=512)
    vlm_cfg["vocab_size"] = 512
    vlm = SmolVLMForConditionalGeneration(AutoConfig.for_model(**vlm_cfg)).to(torch.bfloat16)
    vlm.save_pretrained(root / "vision")
    for name in VISION_FILES:
        shutil.copy(assets / ASSET_DIRS["vision"] / name, root / "vision" / name)
    return root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m smvl.bench.random_sources", description=__doc__.split("\n")[0])
    p.add_argument("assets", help="folder holding qwen3-0.6b/ and smolvlm2-256m-video-instruct/ (configs, tokenizer)")
    p.add_argument("out", help="output folder (vision/ and text/ are written into it)")
    p.add_argument("--layers", type=int, help="cut the LLM and the vision tower to this depth (default: real)")
    args = p.parse_args(argv)
    print(build_random_sources(Path(args.assets), Path(args.out), args.layers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
