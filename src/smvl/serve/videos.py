"""A `video_url` part (vLLM's: data: URI, local path or http(s) URL) -> sampled frames, every limit checked first.

Remote URLs and local paths are refused unless allowed, exactly as for images (`--allow-remote-images`,
`--allow-local-files`). Size is checked on the encoded length before decoding (413); the container header's frame
size and duration are checked before any frame is decoded (413 past `max_video_seconds`); anything else FFmpeg
cannot read is a 400 that does not echo its internals.
"""

from __future__ import annotations

from dataclasses import replace

from smvl.data.samples.sample import BadSample
from smvl.data.samples.video import VideoSampling, load_video
from smvl.serve.errors import APIError
from smvl.serve.images import _local, _remote, decode_data_uri
from smvl.serve.settings import Settings


def too_large(settings: Settings) -> APIError:
    return APIError(413, f"a video is over {settings.max_video_bytes} bytes", "messages", "video_too_large")


def _data_uri(url: str, settings: Settings) -> bytes:
    return decode_data_uri(url, settings.max_video_bytes, "video", too_large(settings))


def fetch_video(url: str, settings: Settings, sampling: VideoSampling | None = None):
    """A `smvl.data.samples.video.Video`, frames sampled as `sampling` (the model's video processor) says."""
    if url.startswith("data:"):
        data = _data_uri(url, settings)
    else:
        # The image fetchers give the same refusals and byte caps, with the video's cap.
        capped = replace(settings, max_image_bytes=settings.max_video_bytes)
        data = _remote(url, capped) if url.startswith(("http://", "https://")) else _local(url, capped)
    if len(data) > settings.max_video_bytes:
        raise too_large(settings)
    try:
        return load_video(data, sampling=sampling, max_seconds=settings.max_video_seconds)
    except BadSample as exc:
        if exc.reason in ("video too long", "video too large"):
            raise APIError(413, f"{exc.reason}: over {settings.max_video_seconds:g} s or the frame size limit",
                           "messages", "video_too_large") from None
        raise APIError(400, f"unusable video: {exc.reason}", "messages", "invalid_video") from None
