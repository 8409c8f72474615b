"""What one request may ask for, and how many may wait; past these a request gets a 4xx (or 503) at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Limits:
    max_image_bytes: int = 10 * 2**20  # decoded base64 / file size of one image
    max_pixels: int = 16_000_000  # width x height of one image
    max_images: int = 4  # per request
    max_tokens: int = 1024  # max_tokens / max_completion_tokens a client may ask for
    max_prompt_tokens: int = 8192  # prompt length after image expansion
    queue_depth: int = 16  # requests generating or waiting; one more gets 503
    allow_local_files: bool = False  # image_url may be a local path (file:// or absolute)
    allow_remote_images: bool = False  # image_url may be http(s) (fetched with the same byte cap)
