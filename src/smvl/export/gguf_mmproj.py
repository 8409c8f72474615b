"""The vision tower + connector as llama.cpp's `mmproj` GGUF with the IDEFICS3 projector (SmolVLM's).

Keys and tensor rules follow llama.cpp's converter (conversion/base.py MmprojModel and conversion/smolvlm.py
SmolVLMModel): the projection width is the text model's hidden size, mean/std and the longest edge come from the
image processor, the embeddings stay f32. Only `model.vision_model.*` and `model.connector.*` are written, so the
file pairs with the text GGUF of any model of the same width.
"""

from __future__ import annotations

from pathlib import Path

import gguf

from smvl.export.gguf_file import add_tensor, finish_gguf, open_gguf
from smvl.export.quant import QUANTS, tensor_type

VISION_PREFIXES = ("model.vision_model.", "model.connector.")


def mmproj_quant(quant: str) -> str:
    """Float exports keep their type; block-quantised ones get an f16 projector, as llama.cpp's published SmolVLM
    mmproj files do (the tower is a small share of the bytes and the most sensitive to rounding)."""
    return quant if quant in ("f32", "f16", "bf16") else "f16"


def write_mmproj_gguf(path: Path, config, tensors, image_processor, quant: str, name: str) -> None:
    vision = config.vision_config
    qtype, ftype = QUANTS[quant]
    writer = open_gguf(path, gguf.MODEL_ARCH.MMPROJ, gguf.GGUFType.MMPROJ, name, ftype)
    writer.add_clip_has_vision_encoder(True)
    writer.add_clip_projector_type(gguf.VisionProjectorType.IDEFICS3)
    writer.add_vision_projection_dim(config.text_config.hidden_size)
    writer.add_vision_image_size(vision.image_size)
    writer.add_vision_patch_size(vision.patch_size)
    writer.add_vision_embedding_length(vision.hidden_size)
    writer.add_vision_feed_forward_length(vision.intermediate_size)
    writer.add_vision_block_count(vision.num_hidden_layers)
    writer.add_vision_head_count(vision.num_attention_heads)
    writer.add_vision_attention_layernorm_eps(vision.layer_norm_eps)
    writer.add_vision_projector_scale_factor(config.scale_factor)
    writer.add_vision_use_gelu(True)
    writer.add_vision_image_mean(list(image_processor.image_mean))
    writer.add_vision_image_std(list(image_processor.image_std))
    # llama.cpp scales every image to this longest edge before it cuts tiles: where the processor does not split, one
    # tile (llama.cpp still adds the overview: see gguf_export.layout_warnings)
    splits = getattr(image_processor, "do_image_splitting", True)
    edge = image_processor.size if splits else image_processor.max_image_size
    writer.add_vision_preproc_image_size(edge["longest_edge"])

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.MMPROJ, vision.num_hidden_layers)
    for hf_name, data in tensors:
        if not hf_name.startswith(VISION_PREFIXES):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ValueError(f"no GGUF name for {hf_name}")
        kind = tensor_type(gguf_name, data.shape, qtype, keep_f32=".embeddings." in hf_name)
        add_tensor(writer, gguf_name, data, kind)
    finish_gguf(writer)
