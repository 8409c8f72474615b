"""Resolve a model source (local folder or hub id) and read it lazily: configs first, tensors one at a time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch

# Enough to splice: configs, tokenizer, image processor, weights. Never optimizer states or other formats.
HUB_PATTERNS = ["*.json", "*.jinja", "*.txt", "*.model", "*.safetensors", "*.safetensors.index.json"]
# Enough for a processor (and configs): what planning data lengths needs, a few MB instead of the weights.
SMALL_FILES = [p for p in HUB_PATTERNS if "safetensors" not in p]


class SourceError(ValueError):
    """A source that cannot be spliced; the message is one sentence for the user."""


def resolve(src: str | Path, patterns: list[str] = HUB_PATTERNS) -> Path:
    """A local folder as is; anything else that looks like `owner/name` is fetched from the hub (`patterns` only):
    Hugging Face, or ModelScope for `modelscope:owner/name` and, with SMVL_HUB=modelscope, for bare ids."""
    from smvl.splice import modelscope

    text = str(src)
    try:
        ms_id = modelscope.modelscope_id(text, bare=False)
        path = Path(src).expanduser()
        if ms_id is None and path.is_dir():
            return path
        if ms_id is None and path.exists():
            raise SourceError(f"{src} is a file; expected a model folder or a hub id")
        repo = ms_id if ms_id is not None else text
        if repo.count("/") != 1 or repo.startswith((".", "/", "~")):
            raise SourceError(f"{src} is neither an existing folder nor a hub id of the form owner/name")
        if ms_id is not None or modelscope.default_hub() == "modelscope":
            return modelscope.download_model(repo, patterns)
    except modelscope.HubError as exc:
        raise SourceError(str(exc)) from None
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(text, allow_patterns=patterns))
    except Exception as exc:  # network, auth, missing repo: all end the same way for the user
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # the hub's messages run to paragraphs
        raise SourceError(f"{src} is not a local folder and could not be fetched from the Hugging Face hub: "
                          f"{reason}") from exc


def model_folder(src: str | Path) -> Path:
    """What every command that loads a model takes: a local model folder or a hub id, as a local folder."""
    folder = resolve(src)
    if not (folder / "config.json").is_file():
        raise SourceError(f"{src} is not a model folder (no config.json)")
    return folder


def load_text_source(source: str):
    """The source LLM a splice recorded (fp32, eval mode) and its name, or None and why it is not available here."""
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(resolve(source), dtype=torch.float32).eval(), source
    except (SourceError, OSError) as exc:
        return None, f"source LLM {source} not available: {exc}"


def read_json(folder: Path, name: str) -> dict:
    file = folder / name
    if not file.is_file():
        raise SourceError(f"{folder} has no {name}")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise SourceError(f"{file} is not valid JSON: {exc}") from exc


def weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / s for s in shards]
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return files
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if bins:
        return bins
    raise SourceError(f"{folder} holds no weights (*.safetensors or pytorch_model*.bin)")


def iter_tensors(folder: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) one at a time so at most one tensor of the source is in memory beyond the mmap."""
    for file in weight_files(folder):
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(file, framework="pt") as f:
                for name in f.keys():
                    yield name, f.get_tensor(name)
        else:
            state = torch.load(file, map_location="cpu", mmap=True, weights_only=True)
            yield from state.items()
            del state
