"""Safe image decoding: every input shape users have, every PIL mode to RGB, and bad images as BadSample.

`MAX_PIXELS` (64 megapixels) caps width x height, checked from the header before any pixel is decoded, so a
decompression bomb costs nothing. SmolVLM resizes to a 2048px longest edge anyway, so nothing useful is lost.
PIL's own bomb guard maps to the same "image too large"; its warning (over `Image.MAX_IMAGE_PIXELS`) is muted at
open because our cap decides, and its hard error (twice that, ~179 MP) still applies whatever `max_pixels` says.

Only `FORMATS` are parsed: PIL opens dozens of formats, some through external programs (EPS runs Ghostscript), and a
training set has no business exercising them. Image paths must name regular files of at most `MAX_FILE_BYTES`: a
FIFO would block the reader forever and `/dev/zero` would fill memory.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import stat
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import ExifTags, Image, ImageOps

from smvl.data.samples.sample import BadSample

MAX_PIXELS = 64_000_000
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
MAX_FILE_BYTES = 256 * 2**20  # a 64 MP RGBA image stored uncompressed
# Plain base64 vs a path: the base64 alphabet has no "." (a file name with an extension never matches) and any real
# image encodes to more than 64 characters. "/" cannot tell them apart: a JPEG's base64 starts with "/9j/".
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]{64,}")


def _open_bytes(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our cap, checked next, decides
            return Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise BadSample("image too large", str(exc)) from exc
    except Exception as exc:
        other = _other_format(data)
        if other:
            raise BadSample("unsupported image format", f"{other} (allowed: {', '.join(FORMATS)})") from exc
        raise BadSample("corrupt image", f"{type(exc).__name__}: {exc}") from exc


def _other_format(data: bytes) -> str | None:
    """The name of a format outside FORMATS whose magic bytes `data` starts with (the plugins' prefix checks only:
    no parser runs), to tell the user why a real image was skipped."""
    Image.init()
    prefix = data[:16]
    for name, (_, accept) in Image.OPEN.items():
        if name not in FORMATS and accept is not None:
            try:
                if accept(prefix):
                    return name
            except Exception:  # noqa: BLE001 - a plugin's check on a short prefix: not a match
                continue
    return None


def _from_base64(text: str) -> Image.Image:
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if ";base64" not in header:
            raise BadSample("bad base64", "data URI is not base64-encoded")
    try:
        data = base64.b64decode("".join(text.split()), validate=True)  # line-wrapped base64 is fine
    except (binascii.Error, ValueError) as exc:
        raise BadSample("bad base64", str(exc)) from exc
    return _open_bytes(data)


def _resolve(path: str | Path, base_dir: Path | None) -> Path:
    path = Path(path)
    return base_dir / path if base_dir is not None and not path.is_absolute() else path


def _from_path(path: Path) -> Image.Image:
    try:
        data = read_regular_file(path, MAX_FILE_BYTES)
    except BadSample:
        raise
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise BadSample("missing image file", str(path)) from exc
    except (OSError, ValueError) as exc:  # permissions, over-long names, NUL bytes, I/O errors
        raise BadSample("unreadable image file", f"{path}: {exc}") from exc
    return _open_bytes(data)


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, else BadSample. Opened non-blocking and checked on the
    open descriptor: a FIFO swapped in after a check would still block a plain open."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(str(path))
        if not stat.S_ISREG(info.st_mode):
            raise BadSample("not a regular file", str(path))
        if info.st_size > limit:
            raise BadSample("image file too large", f"{path}: {info.st_size:,} bytes (limit {limit:,})")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)  # a file growing while read is cut here, not followed
    finally:
        os.close(fd)
    if len(data) > limit:
        raise BadSample("image file too large", f"{path}: over {limit:,} bytes")
    return data


def _from_string(text: str, base_dir: Path | None) -> Image.Image:
    """A data URI, plain base64, or a path (an existing file wins over a base64-looking name)."""
    if text.startswith("data:"):
        return _from_base64(text)
    path = _resolve(text, base_dir)
    if _BASE64.fullmatch(text):
        try:
            is_file = path.is_file()
        except (OSError, ValueError):  # too long or otherwise impossible as a path
            is_file = False
        if not is_file:
            return _from_base64(text)
    return _from_path(path)


class ImageSize(NamedTuple):
    width: int
    height: int


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


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1: as stored) read from the header; a broken EXIF block is metadata, not a reason to
    drop the pixels, so it reads as 1."""
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # noqa: BLE001 - PIL's EXIF parsing raises many types on a malformed block
        return 1


def _opened(obj, base_dir: str | Path | None, max_pixels: int, draft,
            header_only: bool = False) -> tuple[Image.Image, int]:
    """The image opened (PIL has read its header), checked against the cap and drafted, and its EXIF orientation."""
    base = Path(base_dir) if base_dir is not None else None
    if isinstance(obj, Image.Image):
        image = obj
    elif isinstance(obj, (bytes, bytearray)):
        image = _open_bytes(bytes(obj))
    elif isinstance(obj, dict):
        if obj.get("bytes"):
            image = _open_bytes(obj["bytes"])
        elif obj.get("path"):
            image = _from_path(_resolve(obj["path"], base))
        else:
            raise BadSample("missing image", "image record has neither bytes nor path")
    elif isinstance(obj, Path):
        image = _from_path(_resolve(obj, base))
    elif isinstance(obj, str):
        image = _from_string(obj, base)
    else:
        raise BadSample("missing image", f"unsupported image value of type {type(obj).__name__}")
    width, height = image.size
    if width <= 0 or height <= 0:
        raise BadSample("empty image", f"{width}x{height}")
    if width * height > max_pixels:
        raise BadSample("image too large", f"{width}x{height} is over the {max_pixels:,}-pixel cap")
    # A PNG's EXIF may follow its pixels, where Pillow finds it only by decoding: from the header alone, only an
    # EXIF chunk ahead of the pixels counts.
    header_png = header_only and image.format == "PNG" and "exif" not in image.info
    orientation = 1 if header_png else _orientation(image)
    turned = orientation in (5, 6, 7, 8)  # shown a quarter turn round: the upright image is height x width
    if draft is not None and image.format == "JPEG":
        size = draft(height, width) if turned else draft(width, height)
        if size is not None:
            image.draft("RGB", size[::-1] if turned else size)  # draft takes the stored orientation
    return image, orientation


def image_size(obj, base_dir: str | Path | None = None, max_pixels: int = MAX_PIXELS, draft=None) -> ImageSize:
    """The size `load_image` gives (upright, drafted) or its BadSample for a missing, unreadable, unsupported or
    oversized image, from the header alone: nothing decoded (a resume passing trained batches,
    `smvl.data.batches.stream.BatchStream.skipping`), so flaws in the pixel data go unseen."""
    image, orientation = _opened(obj, base_dir, max_pixels, draft, header_only=True)
    width, height = image.size
    return ImageSize(height, width) if orientation in (5, 6, 7, 8) else ImageSize(width, height)


def load_image(obj, base_dir: str | Path | None = None, max_pixels: int = MAX_PIXELS, draft=None) -> Image.Image:
    """A PIL image, bytes, {"bytes", "path"} dict, data URI / base64 string, or path -> RGB, or BadSample.

    `draft(width, height)` -> (width, height) or None: the size a JPEG may be decoded at (PIL `draft`, which
    decodes at 1/2, 1/4 or 1/8 scale, never below the size asked), for a consumer that would shrink it anyway
    (`smvl.data.batches.tiles.FastTiler.decode_size`), asked with the upright size. An EXIF orientation is applied, as
    transformers' `load_image` applies it: a phone photo stored sideways comes out upright."""
    image, orientation = _opened(obj, base_dir, max_pixels, draft)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()  # here, so truncated data fails now and not in a DataLoader worker later
            if orientation in range(2, 9):
                image = ImageOps.exif_transpose(image)  # upright, as transformers' load_image makes a phone photo
            return to_rgb(image)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise BadSample("image too large", str(exc)) from exc
    except Exception as exc:
        raise BadSample("corrupt image", f"{type(exc).__name__}: {exc}") from exc
