"""Building canonical samples from chat records: `<image>` / `<video>` markers, role names, image and video
references."""

from __future__ import annotations

import re
from pathlib import Path

from smvl.data.samples.lazy import ImageRef, VideoRef, decode
from smvl.data.samples.sample import BadSample, Sample, video_parts
from smvl.data.sources.parquet_ref import is_parquet_ref, resolve_parquet_ref
from smvl.data.sources.tool_messages import (
    assistant_fields,
    normalise_tools,
    tool_fields,
)

IMAGE_MARKER = "<image>"
VIDEO_MARKER = "<video>"
_MARKERS = re.compile("(<image>|<video>)")
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
         "bot": "assistant", "model": "assistant", "developer": "system", "tool": "tool", "function": "tool",
         "observation": "tool", "function_call": "assistant"}


def parts_from_text(text: str) -> list[dict] | str:
    """'<image>\\nWhat is it?' -> [image, text] (`<video>` -> a video part); text without markers stays a string."""
    if IMAGE_MARKER not in text and VIDEO_MARKER not in text:
        return text
    parts = []
    for piece in _MARKERS.split(text):
        if piece in (IMAGE_MARKER, VIDEO_MARKER):
            parts.append({"type": piece[1:-1]})
            continue
        piece = re.sub(r"^\n+|\n+$", "", piece)
        if piece:
            parts.append({"type": "text", "text": piece})
    return parts


def normalise_message(message: dict) -> dict:
    if not isinstance(message, dict):
        raise BadSample("malformed message", f"expected an object, got {type(message).__name__}")
    given = str(message.get("role", message.get("from", ""))).lower()
    role = ROLES.get(given)
    if role is None:
        raise BadSample("unknown role", str(message.get("role", message.get("from"))))
    content = message.get("content", message.get("value"))
    fields = {}
    if given == "function_call":  # ShareGPT: the turn's value is the call itself
        content, fields = assistant_fields(message, "", calls_from=content)
    elif role == "assistant":
        content, fields = assistant_fields(message, "" if content is None else content)
    elif role == "tool":
        fields = tool_fields(message)
    if isinstance(content, str):
        return {"role": role, "content": parts_from_text(content), **fields}
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") in ("text", "image", "video") for p in content):
        if any(p["type"] == "text" and not isinstance(p.get("text"), str) for p in content):
            raise BadSample("non-string content", "a text part without a string")
        return {"role": role, "content": [{"type": p["type"], **({"text": p["text"]} if p["type"] == "text" else {})}
                                          for p in content], **fields}
    raise BadSample("non-string content", f"content of type {type(content).__name__}")


def build_sample(messages: list, images: list, sid: str, source: str, base_dir: Path | None = None,
                 lazy: bool = False, videos: list | None = None, tools=None, system=None) -> Sample:
    """Messages (any supported shape) + image and video references -> a validated Sample, or BadSample; `lazy`
    leaves them as ImageRefs / VideoRefs (`smvl.data.samples.lazy`). `tools`: the record's function schemas;
    `system`: a record-level system prompt (ShareGPT's), used where the messages have none."""
    if not isinstance(messages, list) or not messages:
        raise BadSample("no messages")
    if isinstance(images, (str, dict, bytes)):
        images = [images]
    if isinstance(videos, (str, dict, bytes)):
        videos = [videos]
    normalised = [normalise_message(m) for m in messages]
    if isinstance(system, str) and system and normalised[0]["role"] != "system":
        normalised.insert(0, {"role": "system", "content": system})
    sample = Sample(normalised, [], id=sid, source=source, tools=normalise_tools(tools))
    if sample.image_parts() != len(images or []):
        raise BadSample("image count mismatch", f"{sample.image_parts()} <image> markers, {len(images or [])} images")
    if video_parts(sample.messages) != len(videos or []):
        raise BadSample("video count mismatch",
                        f"{video_parts(sample.messages)} <video> markers, {len(videos or [])} videos")
    sample.videos = [VideoRef(ref, base_dir) for ref in videos or []]
    # A parquet reference becomes bytes now, in file order: resolved after a shuffle, each would read a row group.
    sample.images = [ImageRef(resolve_parquet_ref(ref, base_dir) if is_parquet_ref(ref) else ref, base_dir)
                     for ref in images or []]
    sample.validate()
    return sample if lazy else decode(sample)
