"""An `image_url` (data: URI, local path or http(s) URL) -> an RGB image, every size limit checked first."""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from PIL import Image

from smvl.data.samples.images import load_image
from smvl.data.samples.sample import BadSample
from smvl.serve.errors import APIError
from smvl.serve.remote import fetch_remote
from smvl.serve.settings import Settings


def too_large(settings: Settings) -> APIError:
    return APIError(413, f"an image is over {settings.max_image_bytes} bytes", "messages", "image_too_large")


def decode_data_uri(url: str, limit: int, kind: str, too_big: APIError) -> bytes:
    """The bytes of a base64 data URI of an `kind` ("image", "video"), refused as `too_big` past `limit` bytes."""
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise APIError(400, f"{kind} data URIs must be base64-encoded", "messages", f"invalid_{kind}")
    # Checked on the encoded length, so an oversized one is never decoded.
    if len(payload) * 3 // 4 > limit + 2:
        raise too_big
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, f"the {kind} data URI is not valid base64", "messages", f"invalid_{kind}") from None


def _data_uri(url: str, settings: Settings) -> bytes:
    return decode_data_uri(url, settings.max_image_bytes, "image", too_large(settings))


def _remote(url: str, settings: Settings) -> bytes:
    if not settings.allow_remote_images:
        raise APIError(400, "remote image URLs are disabled on this server (--allow-remote-images); send a data: URI",
                       "messages", "remote_images_disabled")
    return fetch_remote(url, settings)


def _read_regular(path: Path, limit: int) -> bytes:
    """At most `limit` + 1 bytes of a regular file; OSError for anything else.

    O_NONBLOCK keeps opening a FIFO from waiting for a writer; devices such as /dev/zero report size 0 and
    never end, so only regular files are read, and never past the limit.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("not a regular file")
        return file.read(limit + 1)


def _local(url: str, settings: Settings) -> bytes:
    if not settings.allow_local_files:
        raise APIError(400, "local image paths are disabled on this server (--allow-local-files); send a data: URI",
                       "messages", "local_files_disabled")
    path = Path(url.removeprefix("file://"))
    if not path.is_absolute():
        raise APIError(400, "local image paths must be absolute", "messages", "invalid_image")
    try:
        return _read_regular(path, settings.max_image_bytes)
    except (OSError, ValueError):  # one text whatever the reason, so answers do not tell which paths exist
        raise APIError(400, "cannot read this local image file", "messages", "invalid_image") from None


def fetch_image(url: str, settings: Settings) -> Image.Image:
    if url.startswith("data:"):
        data = _data_uri(url, settings)
    elif url.startswith(("http://", "https://")):
        data = _remote(url, settings)
    else:
        data = _local(url, settings)
    if len(data) > settings.max_image_bytes:
        raise too_large(settings)
    try:
        return load_image(data, max_pixels=settings.max_pixels)
    except BadSample as exc:
        if exc.reason == "image too large":
            raise APIError(413, f"an image is over {settings.max_pixels} pixels: {exc.detail}", "messages",
                           "image_too_large") from None
        # The reason is not echoed: PIL's texts name internals (`<_io.BytesIO object at 0x...>`).
        raise APIError(400, "unusable image: not a supported image format, or damaged", "messages",
                       "invalid_image") from None
