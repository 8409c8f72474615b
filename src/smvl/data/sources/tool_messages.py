"""Tool use and thinking in chat records -> the message fields chat templates read.

Accepted shapes, as the toolkits users bring data from write them:
- OpenAI's (our JSONL): a record's `tools` (function schemas, `{"type": "function", "function": {...}}` or bare
  `{"name", "description", "parameters"}`); an assistant message's `tool_calls` (`arguments` a JSON string or an
  object) and `reasoning_content`; `tool` messages (`content`, `tool_call_id`, `name`). Older `function` messages
  are tool messages too.
- ShareGPT's as LLaMA-Factory writes it: `function_call` turns (the value a JSON call or list of calls) are assistant
  turns that call, `observation` turns are tool results, and the record's `tools` may be a JSON string.
- A thinking trace written as `<think>...</think>` at the start of an answer is the same as `reasoning_content`.

Arguments become objects here, so that the template writes every call as the model writes one (Qwen3's template
copies an arguments string verbatim, spacing and all, but renders an object with `tojson`).
"""

from __future__ import annotations

import json
import re

from smvl.data.samples.sample import BadSample

# A trace at the very start of an answer; what follows `</think>` is the answer.
_THINK = re.compile(r"\s*<think>(.*?)</think>\s*", re.DOTALL)


def _json(value, what: str):
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise BadSample(f"malformed {what}", f"not JSON: {exc.msg}") from None


def normalise_tools(raw) -> list[dict] | None:
    """A record's `tools` -> OpenAI function tools, or None when it has none."""
    if raw in (None, "", []):
        return None
    tools = _json(raw, "tools")
    if not isinstance(tools, list):
        raise BadSample("malformed tools", f"expected a list of function schemas, got {type(tools).__name__}")
    out = []
    for tool in tools:
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise BadSample("malformed tools", "each tool needs a function name")
        out.append({"type": "function", "function": function})
    return out


def normalise_calls(raw) -> list[dict]:
    """`tool_calls` (OpenAI's) or a `function_call` turn's value -> [{"type": "function", "function": {"name",
    "arguments": dict}}] (an `id` kept where given)."""
    calls = _json(raw, "tool call")
    calls = calls if isinstance(calls, list) else [calls]
    out = []
    for call in calls:
        function = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise BadSample("malformed tool call", "each call needs a function name")
        arguments = _json(function.get("arguments", {}), "tool call")
        if not isinstance(arguments, dict):
            raise BadSample("malformed tool call", f"arguments must be an object, not {type(arguments).__name__}")
        out.append({**({"id": str(call["id"])} if isinstance(call, dict) and call.get("id") else {}),
                    "type": "function", "function": {"name": function["name"], "arguments": arguments}})
    if not out:
        raise BadSample("malformed tool call", "an empty list of calls")
    return out


def split_thinking(content: str) -> tuple[str | None, str]:
    """'<think>trace</think>answer' -> ('trace', 'answer'); content without a leading trace -> (None, content)."""
    found = _THINK.match(content)
    if not found:
        return None, content
    return found.group(1).strip("\n"), content[found.end():]


def assistant_fields(message: dict, content, calls_from=None) -> tuple[object, dict]:
    """An assistant message's content with any leading trace taken out, and its `reasoning_content` / `tool_calls`
    fields (`calls_from`: a ShareGPT `function_call` turn's value)."""
    fields = {}
    reasoning = message.get("reasoning_content")
    if isinstance(content, str) and reasoning is None:
        reasoning, content = split_thinking(content)
    if reasoning is not None:
        if not isinstance(reasoning, str):
            raise BadSample("malformed reasoning", f"reasoning_content of type {type(reasoning).__name__}")
        if reasoning.strip():
            fields["reasoning_content"] = reasoning.strip("\n")
    calls = calls_from if calls_from is not None else message.get("tool_calls")
    if calls:
        fields["tool_calls"] = normalise_calls(calls)
    return content, fields


def tool_fields(message: dict) -> dict:
    """A tool result's `tool_call_id` and `name`, where given."""
    return {k: str(message[k]) for k in ("tool_call_id", "name") if message.get(k)}
