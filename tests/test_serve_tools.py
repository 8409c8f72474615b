"""`tools` reach the chat template; the model's `<tool_call>` blocks come back as OpenAI `tool_calls` (whole and
streamed, parallel, thinking first), malformed ones as content; tool_choice none / required / a named function;
a history of calls and results renders as Qwen3's template renders it; the official `openai` client runs its tool
loop against the server, streaming included. The tiny model's text is scripted (scripted_model.py)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from test_serve_helpers import loaded, post, running  # noqa: F401
from scripted_model import scripted

from smvl.infer.generate import prompt_text
from smvl.serve.app import build_app
from smvl.serve.requests import parse_chat_request
from smvl.serve.settings import Settings

COUNT = {"type": "function", "function": {
    "name": "count", "description": "数出图中某种颜色的物体",
    "parameters": {"type": "object", "properties": {"colour": {"type": "string", "enum": ["红色", "蓝色"]}},
                   "required": ["colour"], "additionalProperties": False}}}
WHERE = {"type": "function", "function": {
    "name": "where", "parameters": {"type": "object", "properties": {"shape": {"type": "string"}}}}}
TOOLS = [COUNT, WHERE]


def block(name: str, arguments: dict) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)}\n</tool_call>'


BAD_BLOCK = '<tool_call>\n{"name": "count", "arguments": {"colour": }\n</tool_call>'
SCRIPTS = {
    "[call]": "我来数一下。\n" + block("count", {"colour": "红色"}),
    "[two]": block("count", {"colour": "红色"}) + "\n" + block("where", {"shape": "圆形"}),
    "[bad]": BAD_BLOCK,
    "[think]": "<think>\n要数红色的。\n</think>\n\n" + block("count", {"colour": "红色"}),
}
ANSWER = "红色的有3个。"


def choose(prompt: str) -> str | None:
    if "</tool_response>" in prompt:
        return ANSWER
    return next((said for marker, said in SCRIPTS.items() if marker in prompt), None)


@pytest.fixture(scope="module")
def served(loaded):
    with scripted(*loaded, choose) as script:
        with running(build_app(*loaded, Settings(model_name="m", max_tokens=96))) as url:
            yield url, script


def ask(marker: str, **body) -> dict:
    return {"messages": [{"role": "user", "content": f"图中有几个红色的？{marker}"}], "tools": TOOLS, **body}


def message(url: str, body: dict) -> tuple[dict, str]:
    response = post(url, body)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    return choice["message"], choice["finish_reason"]


def stream(url: str, body: dict) -> tuple[list[dict], str]:
    with httpx.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}, timeout=60) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    return [c["choices"][0]["delta"] for c in chunks], chunks[-1]["choices"][0]["finish_reason"]


def test_tools_are_written_into_the_prompt(served):
    url, script = served
    message(url, ask("", max_tokens=1))
    assert "<tools>\n" + json.dumps(COUNT, ensure_ascii=False) in script.prompts[-1]
    message(url, {"messages": [{"role": "user", "content": "你好"}], "max_tokens": 1})
    assert "<tools>" not in script.prompts[-1]


def test_a_call_comes_back_as_tool_calls(served):
    url, _ = served
    said, finish = message(url, ask("[call]"))
    assert finish == "tool_calls" and said["content"] == "我来数一下。"
    [call] = said["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "count" and json.loads(call["function"]["arguments"]) == {"colour": "红色"}


def test_parallel_calls_and_parallel_tool_calls_false(served):
    url, _ = served
    said, finish = message(url, ask("[two]"))
    assert said["content"] is None and finish == "tool_calls"
    assert [c["function"]["name"] for c in said["tool_calls"]] == ["count", "where"]
    said, _ = message(url, ask("[two]", parallel_tool_calls=False))
    assert [c["function"]["name"] for c in said["tool_calls"]] == ["count"]
    deltas, _ = stream(url, ask("[two]", parallel_tool_calls=False))
    assert {d["index"] for delta in deltas for d in delta.get("tool_calls", [])} == {0}


def test_malformed_calls_and_tool_choice_none_are_content(served):
    url, _ = served
    said, finish = message(url, ask("[bad]"))
    assert said == {"role": "assistant", "content": BAD_BLOCK} and finish == "stop"
    said, finish = message(url, ask("[call]", tool_choice="none"))
    assert said["content"] == SCRIPTS["[call]"] and "tool_calls" not in said and finish == "stop"


def test_streamed_calls_add_up_to_the_plain_answer(served):
    url, _ = served
    deltas, finish = stream(url, ask("[call]"))
    assert finish == "tool_calls"
    assert "".join(d.get("content") or "" for d in deltas) == "我来数一下。"
    pieces = [p for d in deltas for p in d.get("tool_calls", [])]
    first = pieces[0]
    assert first["index"] == 0 and first["id"].startswith("call_") and first["type"] == "function"
    assert first["function"] == {"name": "count", "arguments": ""}
    arguments = "".join(p["function"].get("arguments", "") for p in pieces)
    assert json.loads(arguments) == {"colour": "红色"} and all(p["index"] == 0 for p in pieces)
    assert not any("<tool_call>" in (d.get("content") or "") for d in deltas)


def test_thinking_is_split_before_the_call(served):
    url, _ = served
    said, finish = message(url, ask("[think]", chat_template_kwargs={"enable_thinking": True}))
    assert said["reasoning_content"] == "要数红色的。" and said["content"] is None and finish == "tool_calls"
    assert said["tool_calls"][0]["function"]["name"] == "count"
    deltas, _ = stream(url, ask("[think]", chat_template_kwargs={"enable_thinking": True}))
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "要数红色的。"
    assert [p["function"]["name"] for d in deltas for p in d.get("tool_calls", []) if "name" in p["function"]] == \
        ["count"]


def run_tool(call) -> str:
    assert call.function.name == "count" and json.loads(call.function.arguments) == {"colour": "红色"}
    return "3"


def test_the_openai_client_tool_loop(served):
    url, script = served
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
    messages = [{"role": "user", "content": "图中有几个红色的？[call]"}]
    reply = client.chat.completions.create(model="m", messages=messages, tools=TOOLS)
    assert reply.choices[0].finish_reason == "tool_calls"
    said = reply.choices[0].message
    messages.append(said.model_dump(exclude_none=True))
    messages += [{"role": "tool", "tool_call_id": c.id, "content": run_tool(c)} for c in said.tool_calls]
    final = client.chat.completions.create(model="m", messages=messages, tools=TOOLS)
    assert final.choices[0].message.content == ANSWER and final.choices[0].finish_reason == "stop"
    # the call went back to the model as Qwen3 writes it, and the result as a tool response
    assert block("count", {"colour": "红色"}) + "<|im_end|>" in script.prompts[-1]
    assert "<tool_response>\n3\n</tool_response>" in script.prompts[-1]


def test_the_openai_stream_helper_accumulates_the_same_calls(served):
    url, script = served
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
    messages = [{"role": "user", "content": "图中有几个红色的？[call]"}]
    with client.chat.completions.stream(model="m", messages=messages, tools=TOOLS) as events:
        done = [e for e in events if e.type == "tool_calls.function.arguments.done"]
        said = events.get_final_completion().choices[0]
    assert said.finish_reason == "tool_calls" and said.message.content == "我来数一下。"
    [call] = said.message.tool_calls
    assert [d.name for d in done] == ["count"] and json.loads(done[0].arguments) == {"colour": "红色"}
    messages += [said.message.model_dump(exclude_none=True, exclude={"parsed"}),
                 {"role": "tool", "tool_call_id": call.id, "content": run_tool(call)}]
    with client.chat.completions.stream(model="m", messages=messages, tools=TOOLS) as events:
        final = events.get_final_completion().choices[0]
    assert final.message.content == ANSWER and not final.message.tool_calls


def test_required_and_named_tool_choice_force_a_valid_call(served):
    """The model's own tokens (nothing scripted): constrained decoding makes them a call to a listed tool whose
    arguments satisfy its schema."""
    url, _ = served
    body = {"messages": [{"role": "user", "content": "你好"}], "tools": TOOLS, "max_tokens": 96}
    free, _ = message(url, body)
    assert "tool_calls" not in free  # left alone, the random model calls nothing
    for choice in ["required", {"type": "function", "function": {"name": "count"}}]:
        said, finish = message(url, {**body, "tool_choice": choice})
        assert finish == "tool_calls", said
        assert said["tool_calls"][0]["function"]["name"] in (["count"] if isinstance(choice, dict) else
                                                             ["count", "where"])
        if said["tool_calls"][0]["function"]["name"] == "count":
            assert json.loads(said["tool_calls"][0]["function"]["arguments"])["colour"] in ("红色", "蓝色")


BAD = {
    "tools not a list": ({"tools": {"type": "function"}}, "tools"),
    "tool without name": ({"tools": [{"type": "function", "function": {"description": "x"}}]}, "tools"),
    "tool of another type": ({"tools": [{"type": "retrieval"}]}, "tools"),
    "bad parameters": ({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]}, "tools"),
    "unknown named tool": ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
                           "tool_choice"),
    "required without tools": ({"tool_choice": "required"}, "tool_choice"),
    "bad tool_choice": ({"tools": TOOLS, "tool_choice": "always"}, "tool_choice"),
    "parallel not a bool": ({"tools": TOOLS, "parallel_tool_calls": "no"}, "parallel_tool_calls"),
    "history arguments": ({"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                              "function": {"name": "count", "arguments": "{colour"}}]}]}, "messages"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_tool_fields_are_400_naming_the_field(served, case):
    url, _ = served
    extra, param = BAD[case]
    response = post(url, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, **extra})
    assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text


def test_a_history_renders_as_qwen3s_own_template(loaded, assets):
    """Arguments sent as a compact JSON string (as JavaScript clients write them) are parsed, so the template
    writes them in the layout Qwen3 was trained on; `developer` is a system message."""
    from transformers import AutoTokenizer

    _, processor = loaded
    call = {"id": "call_1", "type": "function", "function": {"name": "count", "arguments": '{"colour":"红色"}'}}
    body = {"messages": [
        {"role": "developer", "content": "你是助手。"}, {"role": "user", "content": "图中有几个红色的？"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "3"}], "tools": TOOLS}
    req = parse_chat_request(body, Settings(), "m")
    ours = prompt_text(processor, req.messages, False, req.tools)
    qwen3 = AutoTokenizer.from_pretrained(assets / "qwen3-0.6b")
    expected = [{"role": "system", "content": "你是助手。"}, body["messages"][1],
                {"role": "assistant", "content": "", "tool_calls": [
                    {**call, "function": {"name": "count", "arguments": {"colour": "红色"}}}]},
                body["messages"][3]]
    assert ours == qwen3.apply_chat_template(expected, tools=TOOLS, tokenize=False, add_generation_prompt=True,
                                             enable_thinking=False)
    assert '{"name": "count", "arguments": {"colour": "红色"}}' in ours and "<tools>" in ours
