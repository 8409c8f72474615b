"""`tools`, `tool_choice`, `parallel_tool_calls` and `response_format` validated (a 400 naming the field), and
the assistant `tool_calls` of a history made ready for the chat template.

tool_choice "none" does what vLLM does by default: the tools are still in the prompt (the model may talk about
them) and nothing is parsed, so any tool-call text comes back as content. "required" and a named function are
forced by constrained decoding (smvl.infer.grammar).
"""

from __future__ import annotations

import json
import re

from smvl.infer.grammar import Spec
from smvl.serve.errors import APIError

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names
MAX_TOOLS = 128  # OpenAI's limit


def _fail(message: str, param: str) -> APIError:
    return APIError(400, message, param)


def parse_tools(raw) -> list[dict] | None:
    """OpenAI function tools, as the template will see them: {"type": "function", "function": {name, ...}}."""
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) > MAX_TOOLS:
        raise _fail(f"`tools` must be a list of at most {MAX_TOOLS} function tools", "tools")
    names = set()
    for tool in raw:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            raise _fail('each tool must be {"type": "function", "function": {...}}', "tools")
        name = function.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise _fail("each tool's function needs a `name` of 1-64 letters, digits, _ or -", "tools")
        if name in names:
            raise _fail(f"two tools are named {name!r}", "tools")
        names.add(name)
        if not isinstance(function.get("description", ""), str):
            raise _fail(f"tool {name!r}: `description` must be a string", "tools")
        if not isinstance(function.get("parameters", {}), dict):
            raise _fail(f"tool {name!r}: `parameters` must be a JSON schema object", "tools")
    return raw or None


def parse_tool_choice(raw, tools: list[dict] | None):
    """"none" | "auto" | "required" | {"type": "function", "function": {"name": ...}}; OpenAI's default is "auto"
    with tools and "none" without."""
    if raw is None:
        return "auto" if tools else "none"
    if raw in ("none", "auto", "required"):
        if raw == "required" and not tools:
            raise _fail('tool_choice "required" needs `tools`', "tool_choice")
        return raw
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or raw.get("type") != "function" or not isinstance(function, dict):
        raise _fail('`tool_choice` must be "none", "auto", "required" or {"type": "function", "function": '
                    '{"name": ...}}', "tool_choice")
    if function.get("name") not in {t["function"]["name"] for t in tools or []}:
        raise _fail(f"tool_choice names {function.get('name')!r}, which is not in `tools`", "tool_choice")
    return {"type": "function", "function": {"name": function["name"]}}


def parse_response_format(raw) -> dict | None:
    """None for text; {"schema": dict | None} for JSON (None: any object)."""
    if raw is None:
        return None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"schema": None}
    if kind == "json_schema":
        spec = raw.get("json_schema")
        schema = spec.get("schema", {}) if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise _fail('json_schema needs {"json_schema": {"name": ..., "schema": {...}}}', "response_format")
        return {"schema": schema or None}
    raise _fail('`response_format` type must be "text", "json_object" or "json_schema"', "response_format")


def grammar_spec(tools, tool_choice, parallel: bool, response_format, thinking: bool) -> Spec | None:
    forced = tool_choice == "required" or isinstance(tool_choice, dict)
    if response_format is not None:
        if forced:
            raise _fail("a JSON `response_format` cannot be combined with a forced tool_choice", "response_format")
        return Spec("json", thinking, schema=response_format["schema"])
    if forced:
        return Spec("tools", thinking, tuple(tools), tool_choice, parallel)
    return None


def template_tool_calls(calls, where: str = "messages") -> list[dict]:
    """An assistant's `tool_calls` with each `arguments` JSON string parsed to an object: Qwen3's template writes
    an object with tojson (the layout the model was trained on) but a string verbatim, whatever its layout."""
    if not isinstance(calls, list):
        raise _fail("an assistant's `tool_calls` must be a list", where)
    out = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _fail('each tool call must be {"type": "function", "function": {"name", "arguments"}}', where)
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                raise _fail(f"tool call {function['name']!r}: `arguments` is not valid JSON", where) from None
        out.append({**call, "function": {**function, "arguments": arguments}})
    return out
