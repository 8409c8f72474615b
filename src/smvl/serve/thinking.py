"""Generated text -> (`reasoning_content`, `content`), as vLLM and DeepSeek return a reasoning model's thinking.

Works on streamed pieces, which may cut `<think>` or `</think>` anywhere, so a piece that might be the start of a
tag is held until the next one decides. The whitespace around the thinking is dropped, as `split_thinking` does.
"""

from __future__ import annotations

from smvl.infer.tool_calls import partial_tag

OPEN, CLOSE = "<think>", "</think>"


class ThinkingSplitter:
    """feed(piece) and flush() return [("reasoning_content" | "content", text), ...] in order."""

    def __init__(self):
        self.state = "start"  # start -> opening -> thinking -> after -> answer, or start -> answer
        self.buffer = ""

    def feed(self, piece: str) -> list[tuple[str, str]]:
        self.buffer += piece
        out: list[tuple[str, str]] = []
        while True:
            if self.state == "start":
                head = self.buffer.lstrip()
                if not head or (OPEN.startswith(head) and head != OPEN):
                    return out
                if head.startswith(OPEN):
                    self.state, self.buffer = "opening", head[len(OPEN):]
                else:
                    self.state = "answer"
            elif self.state in ("opening", "after"):  # whitespace right after a tag is not text
                self.buffer = self.buffer.lstrip()
                if not self.buffer:
                    return out
                self.state = "thinking" if self.state == "opening" else "answer"
            elif self.state == "thinking":
                end = self.buffer.find(CLOSE)
                if end < 0:
                    keep = len(self.buffer) - partial_tag(self.buffer, CLOSE)
                    keep = len(self.buffer[:keep].rstrip())  # whitespace before </think> is not thinking
                    self._emit(out, "reasoning_content", self.buffer[:keep])
                    self.buffer = self.buffer[keep:]
                    return out
                self._emit(out, "reasoning_content", self.buffer[:end].rstrip())
                self.state, self.buffer = "after", self.buffer[end + len(CLOSE):]
            else:
                self._emit(out, "content", self.buffer)
                self.buffer = ""
                return out

    def flush(self) -> list[tuple[str, str]]:
        """What was held back, once generation has ended (an unclosed think block is all thinking)."""
        out: list[tuple[str, str]] = []
        if self.state in ("opening", "thinking"):
            self._emit(out, "reasoning_content", self.buffer.rstrip())
        elif self.state in ("start", "answer"):
            self._emit(out, "content", self.buffer)
        self.buffer = ""
        return out

    @staticmethod
    def _emit(out: list, field: str, text: str) -> None:
        if text:
            out.append((field, text))


def split(text: str) -> tuple[str, str]:
    """A whole answer -> (reasoning, content), exactly what the streamed pieces add up to (content stripped)."""
    splitter = ThinkingSplitter()
    parts = {"reasoning_content": "", "content": ""}
    for field, piece in splitter.feed(text) + splitter.flush():
        parts[field] += piece
    return parts["reasoning_content"], parts["content"].strip()
