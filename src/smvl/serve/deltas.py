"""Streamed text -> OpenAI chunk deltas: `reasoning_content` (thinking on), `content`, and tool calls as OpenAI
streams them: {"index", "id", "type", "function": {"name", "arguments": ""}}, then {"index", "function":
{"arguments"}}. A call's arguments are sent once its block has closed and parsed (a block that turns out not to
be a call is content, and a call already sent cannot be taken back); the deltas add up to the plain answer."""

from __future__ import annotations

from smvl.infer.tool_calls import ToolCallStreamer, new_call_id
from smvl.serve.thinking import ThinkingSplitter


class Deltas:
    def __init__(self, req):
        self.thinking = ThinkingSplitter() if req.thinking else None
        self.calls = ToolCallStreamer() if req.parse_calls else None
        self.parallel = req.parallel_tool_calls
        self.called = 0

    def feed(self, piece: str) -> list[dict]:
        return self._route(self.thinking.feed(piece) if self.thinking else [("content", piece)])

    def flush(self) -> list[dict]:
        out = self._route(self.thinking.flush()) if self.thinking else []
        return out + (self._calls(self.calls.flush()) if self.calls else [])

    def _route(self, pairs: list[tuple[str, str]]) -> list[dict]:
        out = []
        for field, text in pairs:
            if field == "content" and self.calls:
                out += self._calls(self.calls.feed(text))
            else:
                out.append({field: text})
        return out

    def _calls(self, events: list[tuple[str, object]]) -> list[dict]:
        out = []
        for kind, value in events:
            if kind == "content":
                out.append({"content": value})
            elif self.parallel or not self.called:  # parallel_tool_calls false: the first call only, as vLLM
                index = self.called
                self.called += 1
                out.append({"tool_calls": [{"index": index, "id": new_call_id(), "type": "function",
                                            "function": {"name": value.name, "arguments": ""}}]})
                out.append({"tool_calls": [{"index": index, "function": {"arguments": value.arguments}}]})
        return out
