"""Which GGML type each tensor is written in, following llama.cpp's converter (convert_hf_to_gguf.py,
ModelBase.prepare_tensors): 1-D tensors and norms stay f32, everything else takes the requested type, and a
tensor whose rows the block quantiser cannot split falls back to f16."""

from __future__ import annotations

import gguf
import numpy as np

# --quant name -> (GGML tensor type, GGUF file type)
QUANTS = {
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "bf16": (gguf.GGMLQuantizationType.BF16, gguf.LlamaFileType.MOSTLY_BF16),
    "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    "q5_1": (gguf.GGMLQuantizationType.Q5_1, gguf.LlamaFileType.MOSTLY_Q5_1),
    "q5_0": (gguf.GGMLQuantizationType.Q5_0, gguf.LlamaFileType.MOSTLY_Q5_0),
    "q4_1": (gguf.GGMLQuantizationType.Q4_1, gguf.LlamaFileType.MOSTLY_Q4_1),
    "q4_0": (gguf.GGMLQuantizationType.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
}


def tensor_type(name: str, shape: tuple[int, ...], wanted: gguf.GGMLQuantizationType,
                keep_f32: bool = False) -> gguf.GGMLQuantizationType:
    """The type `name` (a GGUF tensor name) is stored in; `shape` in PyTorch order."""
    if keep_f32 or len(shape) <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight"):
        return gguf.GGMLQuantizationType.F32
    if wanted in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.BF16):
        return wanted
    block, _ = gguf.GGML_QUANT_SIZES[wanted]
    return wanted if shape[-1] % block == 0 else gguf.GGMLQuantizationType.F16


def encode(data: np.ndarray, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    """float32 array -> the bytes (or f32/f16 array) GGUFWriter stores for `qtype`."""
    if qtype == gguf.GGMLQuantizationType.F32:
        return data.astype(np.float32)
    if qtype == gguf.GGMLQuantizationType.F16:
        return data.astype(np.float16)
    return gguf.quants.quantize(data.astype(np.float32), qtype)
