"""Every message field a chat template renders counts against the prompt cap, so none is tokenised unbounded."""

from __future__ import annotations

import time

import httpx
import pytest
from test_serve_helpers import loaded, post, running, user  # noqa: F401

from smvl.serve.app import build_app
from smvl.serve.settings import Settings

LONG = "很长" * 10_000  # 20,000 characters, over 32 x 400 tokens (and under the 1 MiB JSON cap)


@pytest.fixture(scope="module")
def server(loaded):
    with running(build_app(*loaded, Settings(max_tokens=8, max_prompt_tokens=400))) as url:
        yield url


def assistant(**fields):
    return [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "", **fields},
            {"role": "user", "content": "and?"}]


FIELDS = {
    "arguments": {"tool_calls": [{"type": "function", "function": {"name": "f", "arguments": LONG}}]},
    "arguments object": {"tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": LONG}}}]},
    "many arguments": {"tool_calls": [{"type": "function", "function": {"name": "f", "arguments": [0] * 50_000}}]},
    "reasoning_content": {"reasoning_content": LONG},
    "name": {"name": LONG},
    "tool_call_id": {"tool_call_id": LONG},
}


@pytest.mark.parametrize("field", list(FIELDS))
def test_long_message_fields_are_refused_before_tokenizing(server, field):
    started = time.time()
    response = post(server, {"messages": assistant(**FIELDS[field]), "max_tokens": 1})
    assert response.status_code == 400 and response.json()["error"]["code"] == "context_length_exceeded"
    assert time.time() - started < 5


def test_deeply_nested_fields_are_a_400(server):
    # 900 levels parse (under Python's recursion limit) and are few characters, but the template's tojson
    # recursed past the limit: a 500.
    arguments: list = []
    for _ in range(900):
        arguments = [arguments]
    tool_calls = [{"type": "function", "function": {"name": "f", "arguments": arguments}}]
    response = post(server, {"messages": assistant(tool_calls=tool_calls), "max_tokens": 1})
    assert response.status_code == 400 and "nested" in response.json()["error"]["message"], response.text
    assert httpx.get(server + "/health").json()["busy"] == 0
    assert post(server, {"messages": user(), "max_tokens": 1}).status_code == 200


def test_short_tool_calls_still_work(server):
    tool_calls = [{"id": "c1", "type": "function", "function": {"name": "look", "arguments": '{"x": 1}'}}]
    messages = assistant(tool_calls=tool_calls)[:2] + [{"role": "tool", "tool_call_id": "c1", "content": "red"}]
    assert post(server, {"messages": messages, "max_tokens": 1}).status_code == 200
