"""Qwen3's (Hermes') tool-call blocks in generated text -> OpenAI `tool_calls`, whole or streamed.

A block is `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`; several in a row are parallel calls.
Each block is judged alone: a closed block whose JSON is an object with a string `name` and an object
`arguments` becomes a call; any other block (bad JSON, no name, arguments not an object, never closed) stays in
the content as the model wrote it. vLLM's hermes parser instead returns everything as content when any block
fails, and keeps an unclosed last block; judging block by block is what a stream can do (a call already sent
cannot be taken back), so whole answers are parsed the same way and both agree.

The content is the text outside the calls, without the whitespace that separates it from them; None when
nothing else was said, as OpenAI returns it. Used by the server and by evaluation: no serve imports here.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

OPEN, CLOSE = "<tool_call>", "</tool_call>"


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # a JSON object, as OpenAI sends it

    def openai(self, call_id: str | None = None) -> dict:
        return {"id": call_id or new_call_id(), "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def parse_block(body: str) -> ToolCall | None:
    """The text between the tags -> a call, or None when it is not one."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        return None
    if not isinstance(value.get("arguments"), dict):
        return None
    return ToolCall(value["name"], json.dumps(value["arguments"], ensure_ascii=False))


def partial_tag(text: str, tag: str) -> int:
    """The length of the longest end of `text` that begins `tag` (a tag that may still be arriving)."""
    for n in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ToolCallStreamer:
    """feed(piece) and flush() return [("content", str) | ("call", ToolCall), ...] in order.

    Text that may be the start of `<tool_call>` is held until the next piece decides, and so is the whitespace
    before it (dropped when a call follows); a block is held until it closes, then sent whole as a call, or as
    content when it is not one.
    """

    def __init__(self):
        self.buffer = ""
        self.inside = False
        self.after_call = False  # whitespace right after a call is not content

    def feed(self, piece: str) -> list[tuple[str, object]]:
        self.buffer += piece
        out: list[tuple[str, object]] = []
        while True:
            if self.after_call:
                self.buffer = self.buffer.lstrip()
                if not self.buffer:
                    return out
                self.after_call = False
            if not self.inside:
                at = self.buffer.find(OPEN)
                if at < 0:
                    keep = len(self.buffer) - partial_tag(self.buffer, OPEN)
                    keep = len(self.buffer[:keep].rstrip())  # may precede a call
                    self._content(out, self.buffer[:keep])
                    self.buffer = self.buffer[keep:]
                    return out
                head = self.buffer[:at]
                self._content(out, head.rstrip())
                self.buffer, self.inside = head[len(head.rstrip()):] + self.buffer[at:], True
                continue
            start = self.buffer.find(OPEN)
            end = self.buffer.find(CLOSE, start + len(OPEN))
            if end < 0:
                return out
            call = parse_block(self.buffer[start + len(OPEN):end])
            if call is None:  # the whitespace before it and the block itself are content after all
                self._content(out, self.buffer[:end + len(CLOSE)])
            else:
                out.append(("call", call))
                self.after_call = True
            self.buffer, self.inside = self.buffer[end + len(CLOSE):], False

    def flush(self) -> list[tuple[str, object]]:
        """What was held, once generation has ended: an unclosed block is content."""
        out: list[tuple[str, object]] = []
        self._content(out, self.buffer)
        self.buffer, self.inside = "", False
        return out

    @staticmethod
    def _content(out: list, text: str) -> None:
        if text:
            out.append(("content", text))


@dataclass
class Parsed:
    content: str | None
    calls: list[ToolCall]


def parse_tool_calls(text: str) -> Parsed:
    """A whole answer -> its content and calls: exactly what the streamed pieces add up to (content stripped;
    None when there are calls and nothing else)."""
    streamer = ToolCallStreamer()
    content, calls = [], []
    for kind, value in streamer.feed(text) + streamer.flush():
        (calls if kind == "call" else content).append(value)
    said = "".join(content).strip()
    return Parsed(said if said or not calls else None, calls)
