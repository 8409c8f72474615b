"""Everything `smvl serve` can be told: the model, access, and what one request may ask for.

Past a limit a request gets a 4xx at once (413 for sizes, 400 otherwise); past the queue, 503.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 2**20


@dataclass
class Settings:
    model_name: str | None = None  # the id in /v1/models and responses (default: the model folder's name)
    api_key: str | None = None  # when set, /v1/* needs `Authorization: Bearer KEY`
    dtype: str = "auto"
    device: str = "auto"
    queue_depth: int = 16  # requests generating or waiting; one more gets 503
    max_batch: int = 8  # requests generated together (one generate() call)
    batch_wait_ms: float = 20.0  # a batch that is not full starts once no request has arrived for this long
    max_body_bytes: int | None = None  # the whole request body; default: max_images base64 images + max_text_bytes
    max_text_bytes: int = MiB  # the body without its images' data: strings (parsed JSON costs up to ~25x this)
    max_image_bytes: int = 10 * MiB  # one image's encoded bytes (decoded base64, file or download)
    max_pixels: int = 16_000_000  # width x height of one image, read from its header before decoding
    max_images: int = 4  # per request
    max_videos: int = 1  # video_url parts per request
    max_video_bytes: int = 32 * MiB  # one video's encoded bytes
    max_video_seconds: float = 600.0  # one video's duration, read from its container header before decoding
    max_tokens: int = 1024  # the largest max_tokens / max_completion_tokens a request may ask for
    default_max_tokens: int = 256  # when a request gives none
    max_prompt_tokens: int = 8192  # the prompt after image expansion
    allow_local_files: bool = False  # image_url may be a local path (absolute or file://)
    allow_remote_images: bool = False  # image_url may be http(s), fetched with the same byte cap
    remote_timeout_s: float = 10.0  # per remote image, from resolving its name to its last byte
    body_timeout_s: float = 30.0  # to receive the request body, so slow senders cannot hold a queue slot

    def __post_init__(self):
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("an empty api_key would lock every client out; use None for no key")

    @property
    def body_limit(self) -> int:
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return (self.max_images * (self.max_image_bytes * 4 // 3 + 4)
                + self.max_videos * (self.max_video_bytes * 4 // 3 + 4) + self.max_text_bytes)

    @property
    def max_prompt_chars(self) -> int:
        """Texts longer than this cannot fit max_prompt_tokens and are refused before tokenizing."""
        return 32 * self.max_prompt_tokens
