"""The canonical sample every source produces and every consumer eats."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from PIL import Image


class BadSample(ValueError):
    """A sample that must be skipped; the message is the reason shown in the skip table."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def image_parts(messages: list[dict]) -> int:
    """How many image parts the messages hold (where their images go)."""
    return len([k for k in media_order(messages) if k == "image"])


def video_parts(messages: list[dict]) -> int:
    """How many video parts the messages hold (where their videos go)."""
    return len([k for k in media_order(messages) if k == "video"])


def media_order(messages: list[dict]) -> list[str]:
    """"image" / "video" per visual part, in the order they appear (the order their tokens come in)."""
    return [p["type"] for m in messages if isinstance(m["content"], list) for p in m["content"]
            if p.get("type") in ("image", "video")]


@dataclass
class Sample:
    """Images plus chat messages in the Hugging Face chat format.

    `messages` is a list of {"role": "system"|"user"|"assistant"|"tool", "content": str | list[part]} where a
    part is {"type": "text", "text": str}, {"type": "image"} or {"type": "video"}. `images[i]` is the image of the
    i-th image part, counted across all messages in order; `videos[i]` (a `smvl.data.samples.video.Video`, or a
    reference to one until decoded) that of the i-th video part.

    Tool use and thinking, in the shape chat templates read (`smvl.data.sources.tool_messages` builds it): an
    assistant message may carry `tool_calls` ([{"type": "function", "function": {"name", "arguments": dict}}]) and
    `reasoning_content` (its thinking trace); a "tool" message holds a tool's result (optionally `tool_call_id`,
    `name`); `tools` lists the OpenAI function schemas the system prompt offers.
    """

    messages: list[dict]
    images: list[Image.Image] = field(default_factory=list)
    id: str = ""
    source: str = ""
    videos: list = field(default_factory=list)
    tools: list[dict] | None = None

    def image_parts(self) -> int:
        return image_parts(self.messages)

    def validate(self) -> "Sample":
        """Raise BadSample unless images and image parts agree and every assistant turn has text or a tool call."""
        if self.image_parts() != len(self.images):
            raise BadSample("image count mismatch", f"{self.image_parts()} image parts, {len(self.images)} images")
        if video_parts(self.messages) != len(self.videos):
            raise BadSample("video count mismatch", f"{video_parts(self.messages)} video parts, {len(self.videos)} videos")
        if not any(m["role"] == "assistant" for m in self.messages):
            raise BadSample("no assistant turn")
        for m in self.messages:
            if m["role"] == "assistant" and not text_of(m).strip() and not m.get("tool_calls"):
                raise BadSample("empty answer")
        return self


def text_of(message: dict) -> str:
    """The concatenated text of one message, whatever its content shape."""
    content = message["content"]
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadSample("non-string content", type(content).__name__)
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def thinks(messages: list[dict]) -> bool:
    """Whether any assistant turn carries a thinking trace."""
    return any(m.get("reasoning_content") for m in messages)


def tool_calls(messages: list[dict]) -> int:
    """How many tool calls the messages hold."""
    return sum(len(m.get("tool_calls") or []) for m in messages)


def texts_of(message: dict) -> list[str]:
    """Every string of a message the template writes: content, thinking trace, tool-call names and arguments."""
    out = [text_of(message), message.get("reasoning_content") or ""]
    for call in message.get("tool_calls") or []:
        out += [call["function"]["name"], json.dumps(call["function"]["arguments"], ensure_ascii=False)]
    return out
