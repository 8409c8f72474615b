"""Stream source tensors into the spliced checkpoint's key layout, shard by shard, never holding a whole model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

SHARD_BYTES = 1 << 30


class ShardWriter:
    """Collects tensors and flushes them to safetensors shards of about SHARD_BYTES each."""

    def __init__(self, folder: Path, dtype: torch.dtype):
        self.folder, self.dtype = folder, dtype
        self.buffer: dict[str, torch.Tensor] = {}
        self.size = 0
        self.shards: list[list[str]] = []
        self.total = 0
        self.written: set[str] = set()

    def add(self, name: str, tensor: torch.Tensor) -> None:
        if name in self.written:
            raise ValueError(f"tensor {name} appears twice in the sources")
        tensor = tensor.to(self.dtype).contiguous()
        self.buffer[name] = tensor
        self.written.add(name)
        self.size += tensor.numel() * tensor.element_size()
        if self.size >= SHARD_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        save_file(self.buffer, self.folder / f"shard-{len(self.shards)}.tmp", metadata={"format": "pt"})
        self.shards.append(list(self.buffer))
        self.total += self.size
        self.buffer, self.size = {}, 0

    def finish(self) -> set[str]:
        """Give shards their final names (and an index when there are several); return the keys written."""
        self.flush()
        n = len(self.shards)
        if n == 1:
            (self.folder / "shard-0.tmp").rename(self.folder / "model.safetensors")
            return self.written
        weight_map = {}
        for i, keys in enumerate(self.shards):
            name = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            (self.folder / f"shard-{i}.tmp").rename(self.folder / name)
            weight_map.update(dict.fromkeys(keys, name))
        index = {"metadata": {"total_size": self.total}, "weight_map": weight_map}
        (self.folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
        return self.written


def vision_key(name: str) -> str | None:
    """SmolVLM/Idefics3 checkpoints keep the tower under `model.vision_model.`; the rest of that VLM is dropped."""
    for prefix in ("model.vision_model.", "vision_model."):
        if name.startswith(prefix):
            return "model.vision_model." + name[len(prefix):]
    return None


def text_key(name: str, base_prefix: str) -> str:
    """A causal LM's `model.layers...` becomes `model.text_model.layers...`; `lm_head` stays."""
    if name.startswith("lm_head."):
        return name
    if name.startswith(base_prefix + "."):
        name = name[len(base_prefix) + 1:]
    return "model.text_model." + name


def connector_weight(out_features: int, in_features: int, embed_rms: float, seed: int) -> torch.Tensor:
    """N(0, embed_rms / sqrt(fan_in)).

    SigLIP's post-layernorm features have roughly unit scale, so this makes the projected image tokens about as
    large as the LLM's own token embeddings from step 0 (the generic std 0.02 would make them 10-50x too small or
    large depending on the LLM, and a frozen LLM then sees near-constant or exploding image tokens).
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(out_features, in_features, generator=generator) * (embed_rms / math.sqrt(in_features))


def resize_rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """Grow an embedding/lm_head matrix for added tokens: new rows start at the mean of the old ones."""
    if tensor.shape[0] >= rows:
        return tensor
    extra = tensor.float().mean(0, keepdim=True).expand(rows - tensor.shape[0], -1).to(tensor.dtype)
    return torch.cat([tensor, extra], 0)
