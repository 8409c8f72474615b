"""With enable_thinking, the thinking comes back as `reasoning_content` (vLLM's and DeepSeek's field), streamed as
`delta.reasoning_content`; without it, the text is passed through untouched. The tiny model cannot be made to
think, so the server runs with a scripted generation in its place."""

from __future__ import annotations

import json
import random

import httpx
import openai
import pytest
from test_serve_helpers import loaded, post, running, user  # noqa: F401

from smvl.serve.app import build_app
from smvl.serve.settings import Settings
from smvl.serve.thinking import ThinkingSplitter, split

SAID = "<think>\nplan a \n b\n</think>\n\nThe answer. "
PIECES = ["<th", "ink>", "\nplan", " a \n", " b\n</", "think>\n", "\nThe ", "answer. "]


def scripted(model, processor, rows, **options):
    """Stands in for smvl.infer.rows.generate_rows: every row says PIECES whatever it is asked."""
    for row in rows:
        for piece in PIECES:
            row.sink(piece)
        row.token_ids[:], row.finish_reason = list(range(len(PIECES))), "stop"


@pytest.fixture(scope="module")
def server(loaded):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("smvl.serve.worker.generate_rows", scripted)
        with running(build_app(*loaded, Settings(model_name="m", max_tokens=8))) as url:
            yield url


def thinking(on: bool) -> dict:
    return {"chat_template_kwargs": {"enable_thinking": on}}


def test_plain_answers_carry_reasoning_content(server):
    message = post(server, {"messages": user(), **thinking(True)}).json()["choices"][0]["message"]
    assert message == {"role": "assistant", "reasoning_content": "plan a \n b", "content": "The answer."}
    client = openai.OpenAI(base_url=server + "/v1", api_key="unused")
    reply = client.chat.completions.create(model="m", messages=user(), extra_body={"enable_thinking": True})
    assert reply.choices[0].message.reasoning_content == "plan a \n b"
    off = post(server, {"messages": user(), **thinking(False)}).json()["choices"][0]["message"]
    assert off == {"role": "assistant", "content": SAID.strip()}


def stream(url: str, on: bool) -> list[dict]:
    body = {"messages": user(), "stream": True, **thinking(on)}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e)["choices"][0]["delta"] for e in events[:-1]]


def test_streams_carry_delta_reasoning_content(server):
    deltas = stream(server, True)
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "plan a \n b"
    assert "".join(d.get("content", "") for d in deltas).strip() == "The answer."
    assert not any("<think>" in d.get("content", "") or "think>" in d.get("reasoning_content", "") for d in deltas)
    assert "".join(d.get("content", "") for d in stream(server, False)) == SAID
    client = openai.OpenAI(base_url=server + "/v1", api_key="unused")
    chunks = client.chat.completions.create(model="m", messages=user(), stream=True,
                                            extra_body={"enable_thinking": True})
    assert "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices) == \
        "plan a \n b"


@pytest.mark.parametrize("text", [SAID, "  <think>unclosed, cut by max_tokens", "no thinking at all", "<thi",
                                  "<think></think>only the answer", "x <think>late tags are text</think>", ""])
def test_pieces_cut_anywhere_add_up_to_the_whole_split(text):
    rng = random.Random(0)
    for _ in range(100):
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(0, 10)))) if text else []
        splitter, parts = ThinkingSplitter(), {"reasoning_content": "", "content": ""}
        for piece in [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]:
            for field, said in splitter.feed(piece):
                parts[field] += said
        for field, said in splitter.flush():
            parts[field] += said
        assert (parts["reasoning_content"], parts["content"].strip()) == split(text)
    assert split(SAID) == ("plan a \n b", "The answer.")
    assert split("<think>unclosed")[1] == "" and split("x <think>y</think>") == ("", "x <think>y</think>")
