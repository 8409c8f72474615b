"""OpenAI's response shapes: chat.completion, chat.completion.chunk as server-sent events, and usage."""

from __future__ import annotations

import json
import time
import uuid

from smvl.infer.rows import Row


def new_id() -> tuple[str, int]:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())


def finish_reason(generation: Row) -> str:
    # OpenAI has no "cancelled"; a stream is only cancelled once nobody is reading it.
    return "length" if generation.finish_reason == "length" else "stop"


def usage(generation: Row) -> dict:
    prompt, completion = generation.prompt_tokens, generation.completion_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(rid: str, created: int, model: str, text: str, generation: Row,
               reasoning: str | None = None) -> dict:
    message = {"role": "assistant", "content": text}
    if reasoning is not None:  # asked for thinking: the field is there, empty when the model did not think
        message["reasoning_content"] = reasoning
    return {
        "id": rid, "object": "chat.completion", "created": created, "model": model, "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason(generation)}],
        "usage": usage(generation),
    }


def event(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def chunk(rid: str, created: int, model: str, delta: dict | None, finish: str | None = None,
          usage_: dict | None = None) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    data = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": None, "choices": choices}
    if usage_ is not None:
        data["usage"] = usage_
    return event(data)
