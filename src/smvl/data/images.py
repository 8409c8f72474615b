"""Safe image decoding: every input shape users have, every PIL mode to RGB, and bad images as BadSample.

`MAX_PIXELS` (64 megapixels) caps width x height, checked from the header before any pixel is decoded, so a
decompression bomb costs nothing. SmolVLM resizes to a 2048px longest edge anyway, so nothing useful is lost.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from smvl.data.sample import BadSample

MAX_PIXELS = 64_000_000


def _open_bytes(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise BadSample("image too large", str(exc)) from exc
    except Exception as exc:
        raise BadSample("corrupt image", f"{type(exc).__name__}: {exc}") from exc


def _from_base64(text: str) -> Image.Image:
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if ";base64" not in header:
            raise BadSample("bad base64", "data URI is not base64-encoded")
    try:
        return _open_bytes(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise BadSample("bad base64", str(exc)) from exc


def _from_path(path: str | Path, base_dir: Path | None) -> Image.Image:
    path = Path(path)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise BadSample("missing image file", str(path))
    return _open_bytes(path.read_bytes())


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to RGB: alpha composited on white, 16-bit and float scaled to 8 bits, CMYK converted."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        if image.mode == "F":
            top = max(float(array.max(initial=1.0)), 1e-12)
        return Image.fromarray(np.clip(array / top * 255.0, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(obj, base_dir: str | Path | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A PIL image, bytes, {"bytes", "path"} dict, data URI / base64 string, or path -> RGB, or BadSample."""
    base = Path(base_dir) if base_dir is not None else None
    if isinstance(obj, Image.Image):
        image = obj
    elif isinstance(obj, (bytes, bytearray)):
        image = _open_bytes(bytes(obj))
    elif isinstance(obj, dict):
        if obj.get("bytes"):
            image = _open_bytes(obj["bytes"])
        elif obj.get("path"):
            image = _from_path(obj["path"], base)
        else:
            raise BadSample("missing image", "image record has neither bytes nor path")
    elif isinstance(obj, Path):
        image = _from_path(obj, base)
    elif isinstance(obj, str):
        looks_like_base64 = obj.startswith("data:") or (len(obj) > 256 and "/" not in obj[:64].replace("+", ""))
        image = _from_base64(obj) if looks_like_base64 else _from_path(obj, base)
    else:
        raise BadSample("missing image", f"unsupported image value of type {type(obj).__name__}")
    width, height = image.size
    if width <= 0 or height <= 0:
        raise BadSample("empty image", f"{width}x{height}")
    if width * height > max_pixels:
        raise BadSample("image too large", f"{width}x{height} is over the {max_pixels:,}-pixel cap")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise BadSample("image too large", str(exc)) from exc
    except Exception as exc:
        raise BadSample("corrupt image", f"{type(exc).__name__}: {exc}") from exc
    return to_rgb(image)
