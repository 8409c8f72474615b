"""Splice a SmolVLM/Idefics3 vision tower onto a causal LM: a stock SmolVLMForConditionalGeneration checkpoint.

The config is SmolVLMConfig(vision_config=the VLM's tower, text_config=the LLM's own config), so transformers
builds the LLM's native text model (e.g. Qwen3Model) and nothing custom is ever needed to load the result.
Weights are streamed tensor by tensor from the sources into shards; no model is instantiated with real memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoConfig, GenerationConfig, SmolVLMConfig, SmolVLMForConditionalGeneration
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

import smvl
from smvl import folders
from smvl.splice import weights
from smvl.splice.processor import build_processor
from smvl.splice.sources import SourceError, iter_tensors, read_json, resolve, weight_files

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
VISION_TYPES = ("smolvlm", "idefics3")
PROVENANCE = "smvl.json"


def load_sources(vision: str, text: str):
    """Resolve both sources and read their configs; every check that needs no weights happens here."""
    vision_dir, text_dir = resolve(vision), resolve(text)
    vlm = read_json(vision_dir, "config.json")
    if vlm.get("model_type") not in VISION_TYPES:
        raise SourceError(
            f"{vision} is a {vlm.get('model_type')!r} model; the vision source must be a SmolVLM or Idefics3 model"
        )
    llm = read_json(text_dir, "config.json")
    if llm.get("model_type") not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise SourceError(f"{text} is a {llm.get('model_type')!r} model, which transformers has no causal LM for")
    weight_files(vision_dir), weight_files(text_dir)
    return vision_dir, text_dir, AutoConfig.from_pretrained(vision_dir), AutoConfig.from_pretrained(text_dir)


def spliced_config(vlm_config, llm_config, tokenizer, scale_factor: int, dtype: str) -> SmolVLMConfig:
    text_config = llm_config.to_dict()
    vocab = max(llm_config.vocab_size, len(tokenizer))
    text_config.update(
        vocab_size=vocab if vocab == llm_config.vocab_size else -(-vocab // 64) * 64,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision_config = vlm_config.vision_config.to_dict()
    vision_config["model_type"] = "smolvlm_vision"
    config = SmolVLMConfig(
        vision_config=vision_config,
        text_config=text_config,
        scale_factor=scale_factor,
        image_token_id=tokenizer.image_token_id,
        tie_word_embeddings=bool(getattr(llm_config, "tie_word_embeddings", False)),
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
    )
    config.architectures = ["SmolVLMForConditionalGeneration"]
    config.dtype = DTYPES[dtype]
    return config


def generation_config(text_dir: Path, tokenizer) -> GenerationConfig:
    """The LLM's own sampling defaults, with every id taken from the tokenizer."""
    try:
        gen = GenerationConfig.from_pretrained(text_dir)
    except OSError:
        gen = GenerationConfig()
    old = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    eos = [tokenizer.eos_token_id] + [i for i in old if i is not None and i != tokenizer.eos_token_id]
    gen.eos_token_id = eos if len(eos) > 1 else eos[0]
    gen.pad_token_id = tokenizer.pad_token_id
    if tokenizer.bos_token_id is not None:
        gen.bos_token_id = tokenizer.bos_token_id
    return gen


def expected_keys(config: SmolVLMConfig) -> set[str]:
    with torch.device("meta"):
        model = SmolVLMForConditionalGeneration(config)
    keys = set(model.state_dict())
    if config.tie_word_embeddings:
        keys.discard("lm_head.weight")
    return keys


def write_weights(config, vision_dir: Path, text_dir: Path, llm_config, folder: Path, dtype: str, seed: int):
    writer = weights.ShardWriter(folder, DTYPES[dtype])
    for name, tensor in iter_tensors(vision_dir):
        key = weights.vision_key(name)
        if key is not None:
            writer.add(key, tensor)
    base_prefix = getattr(
        __import__("transformers"), MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[llm_config.model_type]
    ).base_model_prefix
    vocab = config.text_config.vocab_size
    embed_rms = None
    for name, tensor in iter_tensors(text_dir):
        key = weights.text_key(name, base_prefix)
        if key == "lm_head.weight" and config.tie_word_embeddings:
            continue
        if key in ("model.text_model.embed_tokens.weight", "lm_head.weight"):
            tensor = weights.resize_rows(tensor, vocab)
            if key != "lm_head.weight":
                embed_rms = tensor.float().pow(2).mean().sqrt().item()
        writer.add(key, tensor)
    if embed_rms is None:
        raise SourceError(f"{text_dir} has no token embedding (embed_tokens) tensor")
    hidden = config.vision_config.hidden_size * config.scale_factor**2
    writer.add(
        "model.connector.modality_projection.proj.weight",
        weights.connector_weight(config.text_config.hidden_size, hidden, embed_rms, seed),
    )
    written, expected = writer.finish(), expected_keys(config)
    if written != expected:
        missing, extra = sorted(expected - written), sorted(written - expected)
        raise SourceError(f"the sources do not fill the spliced model: missing {missing[:5]}, unexpected {extra[:5]}")


def splice(
    vision: str,
    text: str,
    out: str | Path,
    scale_factor: int | None = None,
    dtype: str = "fp32",
    add_tokens: bool = False,
    seed: int = 0,
    image_splitting: bool | None = None,
) -> Path:
    """Build the spliced checkpoint in a temporary sibling folder, then rename it to `out`."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SourceError(f"output folder {out} exists and is not empty; choose another or remove it")
    if dtype not in DTYPES:
        raise SourceError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    vision_dir, text_dir, vlm_config, llm_config = load_sources(vision, text)
    scale = scale_factor or vlm_config.scale_factor
    processor = build_processor(vision_dir, text_dir, vlm_config.vision_config, scale, add_tokens, image_splitting)
    config = spliced_config(vlm_config, llm_config, processor.tokenizer, scale, dtype)

    with folders.building(out) as tmp:
        write_weights(config, vision_dir, text_dir, llm_config, tmp, dtype, seed)
        config.save_pretrained(tmp)
        generation_config(text_dir, processor.tokenizer).save_pretrained(tmp)
        processor.save_pretrained(tmp)
        provenance = {
            "smvl_version": smvl.__version__,
            "vision_source": str(vision),
            "text_source": str(text),
            "scale_factor": scale,
            "dtype": dtype,
            "seed": seed,
            "stages": [],
        }
        (tmp / PROVENANCE).write_text(json.dumps(provenance, indent=2, ensure_ascii=False))
    return out
