"""Expected GGUF sizes per --quant from configs alone (meta-device shapes, no weights, no download): the bytes of
tensor data `smvl export gguf` writes, by the same per-tensor type rules."""

from __future__ import annotations

import gguf

from smvl.export.gguf_mmproj import VISION_PREFIXES, mmproj_quant
from smvl.export.gguf_text import TEXT_PREFIX
from smvl.export.quant import QUANTS, tensor_type


def shapes(config) -> dict[str, tuple[int, ...]]:
    import torch
    from transformers import SmolVLMForConditionalGeneration

    with torch.device("meta"):
        model = SmolVLMForConditionalGeneration(config)
    out = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    if config.text_config.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    return out


def nbytes(shape: tuple[int, ...], kind: gguf.GGMLQuantizationType) -> int:
    block, size = gguf.GGML_QUANT_SIZES[kind]
    count = 1
    for n in shape:
        count *= n
    return count // block * size


def planned_bytes(config, quant: str) -> tuple[int, int]:
    """(text GGUF tensor bytes, mmproj GGUF tensor bytes) for `--quant quant`."""
    text_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN3, config.text_config.num_hidden_layers)
    vision_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.MMPROJ, config.vision_config.num_hidden_layers)
    text = vision = 0
    for name, shape in shapes(config).items():
        if name == "lm_head.weight":
            text += nbytes(shape, tensor_type("output.weight", shape, QUANTS[quant][0]))
        elif name.startswith(TEXT_PREFIX):
            gguf_name = text_map.get_name("model." + name[len(TEXT_PREFIX):], try_suffixes=(".weight", ".bias"))
            text += nbytes(shape, tensor_type(gguf_name, shape, QUANTS[quant][0]))
        elif name.startswith(VISION_PREFIXES):
            gguf_name = vision_map.get_name(name, try_suffixes=(".weight", ".bias"))
            kind = tensor_type(gguf_name, shape, QUANTS[mmproj_quant(quant)][0], keep_f32=".embeddings." in name)
            vision += nbytes(shape, kind)
    return text, vision


def pair_config(vision_dir, text_dir):
    """The spliced config of two sources' config.json files (what `smvl splice` would build)."""
    from transformers import AutoConfig, SmolVLMConfig

    vlm, llm = AutoConfig.from_pretrained(vision_dir), AutoConfig.from_pretrained(text_dir)
    vision_config = vlm.vision_config.to_dict()
    vision_config["model_type"] = "smolvlm_vision"
    return SmolVLMConfig(vision_config=vision_config, text_config=llm.to_dict(), scale_factor=vlm.scale_factor,
                         tie_word_embeddings=bool(getattr(llm, "tie_word_embeddings", False)))


def size_table(config) -> str:
    lines = [f"{'quant':<6} {'text MiB':>9} {'mmproj MiB':>11} {'total MiB':>10}"]
    for quant in QUANTS:
        text, vision = planned_bytes(config, quant)
        lines.append(f"{quant:<6} {text / 2**20:>9.1f} {vision / 2**20:>11.1f} {(text + vision) / 2**20:>10.1f}")
    return "\n".join(lines)
