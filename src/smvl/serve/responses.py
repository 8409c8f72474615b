"""OpenAI's response shapes: chat.completion, chat.completion.chunk as server-sent events, and usage."""

from __future__ import annotations

import json
import time
import uuid

from smvl.infer.rows import Row
from smvl.infer.tool_calls import parse_tool_calls
from smvl.serve.thinking import split


def new_id() -> tuple[str, int]:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())


def finish_reason(generation: Row, called: bool = False) -> str:
    # OpenAI has no "cancelled"; a stream is only cancelled once nobody is reading it.
    if called:
        return "tool_calls"
    return "length" if generation.finish_reason == "length" else "stop"


def message_of(text: str, req) -> dict:
    """The assistant message for a whole answer: thinking split first, then tool calls (when parsed)."""
    reasoning, text = split(text) if req.thinking else (None, text)
    message: dict = {"role": "assistant", "content": text}
    if reasoning is not None:  # asked for thinking: the field is there, empty when the model did not think
        message["reasoning_content"] = reasoning
    if req.parse_calls:
        parsed = parse_tool_calls(text)
        calls = parsed.calls if req.parallel_tool_calls else parsed.calls[:1]  # vLLM keeps the first
        if calls:
            message["content"] = parsed.content
            message["tool_calls"] = [call.openai() for call in calls]
    return message


def logprobs_of(generation: Row, req, start: int = 0, end: int | None = None) -> dict | None:
    if req.top_logprobs is None:
        return None
    return {"content": generation.logprobs[start:end], "refusal": None}


def usage(generation: Row) -> dict:
    prompt, completion = generation.prompt_tokens, generation.completion_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(rid: str, created: int, model: str, text: str, generation: Row, req) -> dict:
    message = message_of(text, req)
    return {
        "id": rid, "object": "chat.completion", "created": created, "model": model, "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": logprobs_of(generation, req),
                     "finish_reason": finish_reason(generation, bool(message.get("tool_calls")))}],
        "usage": usage(generation),
    }


def event(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def chunk(rid: str, created: int, model: str, delta: dict | None, finish: str | None = None,
          usage_: dict | None = None, logprobs: dict | None = None) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]
    data = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": None, "choices": choices}
    if usage_ is not None:
        data["usage"] = usage_
    return event(data)
