"""An `image_url` (data: URI, local path or http(s) URL) -> an RGB image, every size limit checked first."""

from __future__ import annotations

import base64
import binascii
import urllib.error
import urllib.request
from pathlib import Path

from PIL import Image

from smvl.data.images import load_image
from smvl.data.sample import BadSample
from smvl.serve.errors import APIError
from smvl.serve.settings import Settings


def too_large(settings: Settings) -> APIError:
    return APIError(413, f"an image is over {settings.max_image_bytes} bytes", "messages", "image_too_large")


def _data_uri(url: str, settings: Settings) -> bytes:
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise APIError(400, "image data URIs must be base64-encoded", "messages", "invalid_image")
    # Checked on the encoded length, so an oversized image is never decoded.
    if len(payload) * 3 // 4 > settings.max_image_bytes + 2:
        raise too_large(settings)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, "the image data URI is not valid base64", "messages", "invalid_image") from None


def _remote(url: str, settings: Settings) -> bytes:
    if not settings.allow_remote_images:
        raise APIError(400, "remote image URLs are disabled on this server (--allow-remote-images); send a data: URI",
                       "messages", "remote_images_disabled")
    try:
        # Only reached with --allow-remote-images: the operator chose to let clients make the server fetch URLs.
        with urllib.request.urlopen(url, timeout=settings.remote_timeout_s) as response:
            if not response.geturl().startswith(("http://", "https://")):
                raise APIError(400, "image URLs may only redirect to http(s)", "messages", "invalid_image")
            return response.read(settings.max_image_bytes + 1)
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        raise APIError(400, f"could not fetch the image: {exc}", "messages", "invalid_image") from None


def _local(url: str, settings: Settings) -> bytes:
    if not settings.allow_local_files:
        raise APIError(400, "local image paths are disabled on this server (--allow-local-files); send a data: URI",
                       "messages", "local_files_disabled")
    path = Path(url.removeprefix("file://"))
    if not path.is_absolute():
        raise APIError(400, "local image paths must be absolute", "messages", "invalid_image")
    try:
        if path.stat().st_size > settings.max_image_bytes:
            raise too_large(settings)
        return path.read_bytes()
    except OSError as exc:
        raise APIError(400, f"cannot read image file {path}: {exc.strerror or exc}", "messages",
                       "invalid_image") from None


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
        raise APIError(400, f"unusable image: {exc}", "messages", "invalid_image") from None
