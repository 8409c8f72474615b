"""Every request field changes the answer as OpenAI's does, or is a 400 naming it: `stop`, `seed` (inside mixed
batches too), `logprobs`/`top_logprobs` (streamed too), `response_format` enforced by constrained decoding; the
fields the server does not act on are refused unless neutral or metadata."""

from __future__ import annotations

import json

import httpx
import pytest
import torch
from test_serve_batch import together
from test_serve_helpers import loaded, post, running  # noqa: F401
from test_serve_tools import stream
from scripted_model import scripted

from smvl.infer.generate import inputs_for
from smvl.infer.rows import generate_rows
from smvl.serve.app import build_app
from smvl.serve.settings import Settings

SAID = "Hello STOP world 你好"
THOUGHT = '<think>\n想想。\n</think>\n\n{"colour": "蓝色"}'


def choose(prompt: str) -> str | None:
    return SAID if "[say]" in prompt else THOUGHT if "[think]" in prompt else None


@pytest.fixture(scope="module")
def app(loaded):
    with scripted(*loaded, choose) as script:
        app = build_app(*loaded, Settings(model_name="m", max_tokens=64, max_batch=8))
        with running(app) as url:
            yield app, url, script


def ask(text: str, **body) -> dict:
    return {"messages": [{"role": "user", "content": text}], **body}


def reply(url: str, body: dict) -> dict:
    response = post(url, body)
    assert response.status_code == 200, response.text
    return response.json()


def test_stop_strings_end_the_answer_before_them(app):
    _, url, _ = app
    whole = reply(url, ask("[say]"))
    assert whole["choices"][0]["message"]["content"] == SAID
    for stop in ["STOP", ["nothing", "ST"], ["你好", "STOP"]]:
        cut = reply(url, ask("[say]", stop=stop))
        assert cut["choices"][0]["message"]["content"] == "Hello" and cut["choices"][0]["finish_reason"] == "stop"
        assert cut["usage"]["completion_tokens"] < whole["usage"]["completion_tokens"]  # generation stopped
    deltas, finish = stream(url, ask("[say]", stop=" wor"))
    assert "".join(d.get("content", "") for d in deltas) == "Hello STOP" and finish == "stop"


def sampled(url: str, seed: int | None, text: str = "你好") -> str:
    extra = {} if seed is None else {"seed": seed}
    return reply(url, ask(text, temperature=1.0, max_tokens=12, **extra))["choices"][0]["message"]["content"]


def test_a_seed_repeats_the_sampled_answer_even_in_a_batch(app, monkeypatch):
    application, url, _ = app
    first = sampled(url, 7)
    assert sampled(url, 7) == first
    assert len({first, sampled(url, 8), sampled(url, 9)}) == 3
    sizes = []

    def recording(model, processor, rows):
        sizes.append(len(rows))
        return generate_rows(model, processor, rows)

    monkeypatch.setattr("smvl.serve.worker.generate_rows", recording)
    options = {"temperature": 1.0, "max_tokens": 12}
    bodies = [ask("你好", seed=7, **options), ask("图中有几个物体？", **options), ask("你好", seed=8, **options),
              ask("你好", seed=7, **options)]
    answers = [r.json()["choices"][0]["message"]["content"] for r in together(application, url, bodies)]
    assert sizes == [4] and answers[0] == answers[3] == first and answers[2] == sampled(url, 8)


def test_logprobs_in_openais_shape_whole_and_streamed(app):
    _, url, _ = app
    body = ask("[say]", logprobs=True, top_logprobs=2)
    got = reply(url, body)["choices"][0]["logprobs"]
    entries = got["content"]
    assert b"".join(bytes(e["bytes"]) for e in entries).decode() == SAID  # the end token has no entry
    for e in entries:
        assert set(e) == {"token", "logprob", "bytes", "top_logprobs"} and e["logprob"] <= 0
        assert len(e["top_logprobs"]) == 2 and e["top_logprobs"][0]["bytes"] == e["bytes"]  # scripted: the best
        assert e["top_logprobs"][0]["logprob"] >= e["top_logprobs"][1]["logprob"]
    with httpx.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}, timeout=60) as response:
        chunks = [json.loads(line[6:]) for line in response.iter_lines()
                  if line.startswith("data: ") and line != "data: [DONE]"]
    streamed = [e for c in chunks for e in ((c["choices"][0]["logprobs"] or {}).get("content") or [])]
    assert [e["token"] for e in streamed] == [e["token"] for e in entries]
    for c in chunks[1:]:  # each chunk carries the entries of its own text
        said = (c["choices"][0]["logprobs"] or {}).get("content") or []
        assert b"".join(bytes(e["bytes"]) for e in said).decode() == c["choices"][0]["delta"].get("content", "")
    assert reply(url, ask("[say]"))["choices"][0]["logprobs"] is None


def test_greedy_logprobs_are_the_models_best(app, loaded):
    _, url, _ = app
    said = reply(url, ask("你好", logprobs=True, top_logprobs=3, max_tokens=6))
    entries = said["choices"][0]["logprobs"]["content"]
    assert len(entries) > 0 and all(len(e["top_logprobs"]) == 3 for e in entries)
    assert all(e["logprob"] == e["top_logprobs"][0]["logprob"] for e in entries)
    model, processor = loaded  # the first token's, computed here from the model's own logits
    with torch.no_grad():
        logits = model(**inputs_for(model, processor, [ask("你好")["messages"]], [[]])).logits[0, -1]
    best = torch.topk(torch.log_softmax(logits.float(), -1), 3).values.tolist()
    assert [e["logprob"] for e in entries[0]["top_logprobs"]] == pytest.approx(best, abs=1e-4)
    assert reply(url, ask("你好", logprobs=True, max_tokens=2))["choices"][0]["logprobs"]["content"][0][
        "top_logprobs"] == []


COLOUR = {"type": "object", "properties": {"colour": {"type": "string", "enum": ["红色", "蓝色"]}},
          "required": ["colour"], "additionalProperties": False}


def test_response_format_is_enforced(app):
    _, url, _ = app
    schema = {"type": "json_schema", "json_schema": {"name": "colour", "schema": COLOUR}}
    said = reply(url, ask("[say]", response_format=schema))["choices"][0]["message"]["content"]
    assert json.loads(said)["colour"] in ("红色", "蓝色")
    # thinking first, unconstrained, then the JSON (here the scripted text, which fits the schema)
    thinking = reply(url, ask("[think]", response_format=schema, enable_thinking=True))["choices"][0]["message"]
    assert thinking["reasoning_content"] == "想想。" and json.loads(thinking["content"]) == {"colour": "蓝色"}
    loose = reply(url, ask("[say]", response_format={"type": "json_object"}, max_tokens=8))
    assert loose["choices"][0]["message"]["content"].startswith("{")  # not SAID: the grammar overrules the script
    assert reply(url, ask("[say]", response_format={"type": "text"}))["choices"][0]["message"]["content"] == SAID


REFUSED = {
    "frequency_penalty": 0.5, "presence_penalty": -1, "logit_bias": {"12": 5}, "store": True, "functions": [],
    "best_of": 2, "stop": ["a", "b", "c", "d", "e"], "seed": "7", "top_logprobs": 21, "logprobs": "yes",
    "response_format": {"type": "xml"}, "stream_options": {"continuous_usage_stats": True},
    "chat_template_kwargs": {"reasoning_effort": "high"},
}


@pytest.mark.parametrize("field", list(REFUSED))
def test_fields_not_acted_on_are_400_naming_them(app, field):
    _, url, _ = app
    extra = {field: REFUSED[field], **({"logprobs": True} if field == "top_logprobs" else {})}
    response = post(url, ask("hi", max_tokens=1, **extra))
    assert response.status_code == 400 and response.json()["error"]["param"] == field, response.text


def test_neutral_values_and_metadata_are_accepted(app):
    _, url, _ = app
    neutral = {"frequency_penalty": 0, "presence_penalty": 0.0, "logit_bias": {}, "store": False, "user": "u1",
               "metadata": {"k": "v"}, "n": 1, "top_logprobs": None}
    assert post(url, ask("hi", max_tokens=1, **neutral)).status_code == 200
    bad_schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}
    response = post(url, ask("hi", max_tokens=1, response_format=bad_schema))
    assert response.status_code == 400 and response.json()["error"]["param"] == "response_format", response.text
