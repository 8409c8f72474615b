"""`smvl export gguf`: a spliced (or trained) SmolVLM checkpoint -> a text GGUF + an mmproj GGUF for llama.cpp."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from smvl.errors import UserError
from smvl.export.gguf_mmproj import mmproj_quant, write_mmproj_gguf
from smvl.export.gguf_text import ARCHES, write_text_gguf
from smvl.export.quant import QUANTS
from smvl.export.vocab import VocabError


@dataclass(frozen=True)
class Exported:
    text: Path
    mmproj: Path
    warnings: tuple[str, ...] = ()


def layout_warnings(model_dir: Path, image_processor) -> tuple[str, ...]:
    """What llama.cpp will feed differently from our processor. Its SmolVLM path always cuts an image into tiles
    plus an overview (tools/mtmd, mtmd_image_preprocessor_idefics3), so a model trained on the overview alone (the
    demo's layout) sees the image twice there: a 1x1 tile and the overview."""
    if getattr(image_processor, "do_image_splitting", True):
        return ()
    return (f"{model_dir} does not split images (do_image_splitting false), but llama.cpp's SmolVLM path always "
            "feeds a tile grid plus an overview: there each image becomes one tile and the overview, twice the "
            "image tokens this model was trained on, and its answers can differ from transformers'",)


def checkpoint_tensors(folder: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Every tensor of the checkpoint as float32 numpy, one at a time (shards are memory-mapped)."""
    import torch
    from safetensors import safe_open

    for shard in sorted(folder.glob("*.safetensors")):
        with safe_open(shard, framework="pt") as f:
            for name in f.keys():
                yield name, f.get_tensor(name).to(torch.float32).numpy()


def export_gguf(model_dir: Path, out: Path, quant: str = "f16", name: str | None = None) -> Exported:
    from transformers import AutoConfig, AutoProcessor

    if quant not in QUANTS:
        raise UserError(f"unknown --quant {quant}; choose one of {', '.join(QUANTS)}")
    config = AutoConfig.from_pretrained(model_dir)
    if config.model_type not in ("smolvlm", "idefics3"):
        raise UserError(f"{model_dir} is a {config.model_type} model; export gguf takes a SmolVLM checkpoint")
    if config.text_config.model_type not in ARCHES:
        raise UserError(f"{model_dir}: export gguf supports text models of type {', '.join(ARCHES)}, "
                        f"not {config.text_config.model_type}")
    if not list(model_dir.glob("*.safetensors")):
        raise UserError(f"{model_dir} has no .safetensors weights")
    processor = AutoProcessor.from_pretrained(model_dir)
    name = name or model_dir.resolve().name
    out.mkdir(parents=True, exist_ok=True)
    files = Exported(out / f"{name}-{quant}.gguf", out / f"mmproj-{name}-{mmproj_quant(quant)}.gguf",
                     layout_warnings(model_dir, processor.image_processor))
    try:
        write_text_gguf(files.text, config, checkpoint_tensors(model_dir), processor.tokenizer,
                        processor.tokenizer.chat_template, quant, name)
    except VocabError as exc:
        raise UserError(f"{model_dir}: {exc}") from exc
    write_mmproj_gguf(files.mmproj, config, checkpoint_tensors(model_dir), processor.image_processor,
                      mmproj_quant(quant), name)
    return files
