"""One GGUF file's lifecycle, shared by the text model and the mmproj: open with the keys every file carries,
add tensors in a requested type, write header, keys and tensors in gguf-py's order."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from smvl.export.quant import encode


def open_gguf(path: Path, arch: gguf.MODEL_ARCH, kind: str, name: str, ftype: gguf.LlamaFileType) -> gguf.GGUFWriter:
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[arch])
    writer.add_type(kind)
    writer.add_name(name)
    writer.add_file_type(ftype)
    return writer


def add_tensor(writer: gguf.GGUFWriter, name: str, data: np.ndarray, kind: gguf.GGMLQuantizationType) -> None:
    writer.add_tensor(name, encode(data, kind), raw_dtype=kind)


def finish_gguf(writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
