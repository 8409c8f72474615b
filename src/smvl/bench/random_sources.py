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
import sys
from contextlib import contextmanager
from pathlib import Path

from smvl.errors import UserError

TEXT_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "generation_config.json")
VISION_FILES = ("preprocessor_config.json", "processor_config.json")
ASSET_DIRS = {"vision": "smolvlm2-256m-video-instruct", "text": "qwen3-0.6b"}
# The model classes below are fixed, so a config of another family is a wrong folder, not a variant.
MODEL_TYPES = {"vision": "smolvlm", "text": "qwen3"}


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


@contextmanager
def _config_errors(path: Path):
    """transformers' own complaints about a config (unknown fields, bad values) as a UserError naming the file."""
    from huggingface_hub.errors import StrictDataclassError  # transformers 5 configs type-check their fields with it

    try:
        yield
    except (OSError, ValueError, TypeError, KeyError, StrictDataclassError) as exc:
        raise UserError(f"{path}: not a usable config ({_one_line(exc)})") from None


def check_assets(assets: Path) -> dict:
    """The parsed config.json of each asset folder, or a UserError naming the first bad file.

    Run before anything is built: a bad file found halfway would cost a full-size model's construction and leave
    a half-written output folder, and a missing folder would send transformers to the hub instead."""
    assets = Path(assets)
    if not assets.is_dir():
        raise UserError(f"{assets}: not a folder (expected {' and '.join(ASSET_DIRS.values())} inside it)")
    configs = {}
    for kind, files in (("text", TEXT_FILES), ("vision", VISION_FILES)):
        folder = assets / ASSET_DIRS[kind]
        if not folder.is_dir():
            raise UserError(f"{folder}: missing (the {kind} source's config, tokenizer and processor files)")
        for name in ("config.json", *files):
            path = folder / name
            if not path.is_file():
                raise UserError(f"{path}: missing" if not path.exists() else f"{path}: not a file")
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise UserError(f"{path}: unreadable ({exc.strerror or _one_line(exc)})") from None
            if name.endswith(".json"):
                try:
                    parsed = json.loads(data)
                except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
                    raise UserError(f"{path}: not valid JSON ({_one_line(exc)})") from None
                if not isinstance(parsed, dict):
                    raise UserError(f"{path}: expected a JSON object, found {type(parsed).__name__}")
                if name == "config.json":
                    configs[kind] = parsed
        path = folder / "config.json"
        found = configs[kind].get("model_type")
        if found != MODEL_TYPES[kind]:
            raise UserError(f"{path}: model_type is {found!r}, expected {MODEL_TYPES[kind]!r}" if found is not None
                            else f"{path}: no model_type (expected {MODEL_TYPES[kind]!r})")
        if kind == "vision":
            for key in ("vision_config", "text_config"):
                if not isinstance(configs[kind].get(key), dict):
                    raise UserError(f"{path}: no {key!r} object")
    return configs


def build_random_sources(assets: Path, root: Path, layers: int | None = None, seed: int = 0) -> Path:
    """bf16 checkpoints under root/vision and root/text; `layers` cuts both the LLM and the vision tower."""
    assets, root = Path(assets), Path(root)
    configs = check_assets(assets)

    import torch
    from transformers import AutoConfig, Qwen3ForCausalLM, SmolVLMForConditionalGeneration

    torch.manual_seed(seed)
    overrides = {"num_hidden_layers": layers, "layer_types": ["full_attention"] * layers} if layers else {}
    vlm_cfg = configs["vision"]
    if layers:
        vlm_cfg["vision_config"]["num_hidden_layers"] = layers
    vlm_cfg["text_config"].update(num_hidden_layers=1, vocab_size=512)
    vlm_cfg["vocab_size"] = 512
    # Both configs before either model, so a config transformers rejects leaves no half-written output.
    with _config_errors(assets / ASSET_DIRS["text"] / "config.json"):
        text_config = AutoConfig.from_pretrained(assets / ASSET_DIRS["text"], local_files_only=True, **overrides)
    with _config_errors(assets / ASSET_DIRS["vision"] / "config.json"):
        vlm_config = AutoConfig.for_model(**vlm_cfg)

    text = Qwen3ForCausalLM(text_config).to(torch.bfloat16)
    text.save_pretrained(root / "text")
    del text
    for name in TEXT_FILES:
        shutil.copy(assets / ASSET_DIRS["text"] / name, root / "text" / name)

    vlm = SmolVLMForConditionalGeneration(vlm_config).to(torch.bfloat16)
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
    try:
        print(build_random_sources(Path(args.assets), Path(args.out), args.layers))
    except UserError as exc:  # the same one-line report and exit status as the `smvl` command
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
