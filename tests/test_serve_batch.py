"""The server generates concurrent requests together: each answer is the one it gets alone (greedy), a row that
is cancelled stops without disturbing the others, a batch never exceeds --max-batch, and vLLM's min_tokens and
ignore_eos are honoured."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest
from test_serve_helpers import data_uri, loaded, post, running  # noqa: F401

from smvl.infer.generate import inputs_for
from smvl.infer.rows import Row, generate_rows
from smvl.serve.app import build_app
from smvl.serve.settings import Settings


def ask(text: str, images: int, colour=(220, 30, 30)) -> list[dict]:
    parts = [{"type": "image_url", "image_url": {"url": data_uri(colour=colour)}}] * images
    return [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]


# Different prompt lengths and image counts (0, 1, 2), so rows are padded differently and images are padded too.
BODIES = [{"messages": ask("图中有几个物体？", 1), "max_tokens": 12},
          {"messages": ask("你好，今天天气怎么样？请详细说说", 0), "max_tokens": 9, "stream": True},
          {"messages": ask("比较这两张图片", 2, (0, 90, 200)), "max_tokens": 12, "ignore_eos": True},
          {"messages": ask("这是什么颜色？", 1, (10, 200, 10)), "max_tokens": 7, "stream": True}]


def answer(response: httpx.Response) -> tuple[str, int]:
    """(text, completion tokens) of a plain or streamed answer."""
    if not response.text.startswith("data: "):
        body = response.json()
        return body["choices"][0]["message"]["content"], body["usage"]["completion_tokens"]
    chunks = [json.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    return text.strip(), chunks[-1]["usage"]["completion_tokens"]


def together(app, url: str, bodies: list[dict]) -> list[httpx.Response]:
    """Sends every body at once while the generation thread is held, so they wait, and start, together."""
    hold = threading.Event()
    app.state.worker.executor.submit(hold.wait)

    async def burst():
        async with httpx.AsyncClient(timeout=120) as client:
            sent = [asyncio.create_task(client.post(url + "/v1/chat/completions", json=body)) for body in bodies]
            while len(app.state.worker.pending) < len(bodies):
                await asyncio.sleep(0.01)
            hold.set()
            return await asyncio.gather(*sent)

    return asyncio.run(burst())


@pytest.fixture
def batches(monkeypatch) -> list[int]:
    """The size of every batch the worker generates."""
    sizes: list[int] = []

    def recording(model, processor, rows, **options):
        sizes.append(len(rows))
        return generate_rows(model, processor, rows, **options)

    monkeypatch.setattr("smvl.serve.worker.generate_rows", recording)
    return sizes


def test_batched_answers_are_the_answers_alone(loaded, batches):
    app = build_app(*loaded, Settings(max_tokens=64, max_images=2, max_batch=8))
    with running(app) as url:
        for body in BODIES:
            body.setdefault("stream_options", {"include_usage": True})
        alone = [answer(post(url, body)) for body in BODIES]
        assert batches == [1] * len(BODIES)
        assert len({text for text, _ in alone}) > 1  # distinct answers, so a row sent to the wrong client shows
        responses = together(app, url, BODIES)
        assert batches[len(BODIES):] == [len(BODIES)]
        assert [answer(r) for r in responses] == alone
        assert alone[2][1] == 12  # ignore_eos: all of max_tokens


def test_a_request_that_breaks_generation_fails_alone_not_its_batch(loaded, monkeypatch):
    """Generation raising for one row (here: the row asking for 5 tokens) answers that request 500 and its batch
    mates as they are answered alone, each request once."""
    calls: list[list[int]] = []

    def fragile(model, processor, rows, **options):
        calls.append([r.max_new_tokens for r in rows])
        if any(r.max_new_tokens == 5 for r in rows):
            raise RuntimeError("boom")
        return generate_rows(model, processor, rows, **options)

    bodies = [{**body, "stream_options": {"include_usage": True}} for body in BODIES]
    app = build_app(*loaded, Settings(max_tokens=64, max_images=2, max_batch=8))
    with running(app) as url:
        alone = [answer(post(url, body)) for body in bodies]
        monkeypatch.setattr("smvl.serve.worker.generate_rows", fragile)
        poisoned = {"messages": ask("坏了", 1), "max_tokens": 5}
        responses = together(app, url, [*bodies[:2], poisoned, *bodies[2:]])
    assert [r.status_code for r in responses] == [200, 200, 500, 200, 200]
    assert responses[2].json()["error"]["code"] == "generation_failed"
    assert [answer(r) for i, r in enumerate(responses) if i != 2] == alone
    assert sorted(calls[0]) == sorted([12, 9, 5, 12, 7]) and sorted(calls[1:]) == [[5], [7], [9], [12], [12]]


def test_the_batch_cap_is_respected(loaded, batches):
    app = build_app(*loaded, Settings(max_tokens=8, max_batch=2))
    with running(app) as url:
        responses = together(app, url, [{"messages": ask(f"问题{i}", 1), "max_tokens": 3} for i in range(5)])
    assert [r.status_code for r in responses] == [200] * 5
    assert batches == [2, 2, 1]


def prompts(model, processor, n: int) -> list[dict]:
    texts = ["图中有几个物体？", "你好，请详细说说今天的天气", "这是什么颜色？"]
    return [inputs_for(model, processor, [ask(texts[i], 0)], [[]]) for i in range(n)]


def rows_of(inputs: list[dict], max_new_tokens: int, **fields) -> list[Row]:
    return [Row(x, max_new_tokens, **fields) for x in inputs]


def test_a_cancelled_row_stops_and_leaves_the_others_unchanged(loaded):
    model, processor = loaded
    inputs = prompts(model, processor, 3)
    alone = []
    for x in inputs:
        generate_rows(model, processor, rows := rows_of([x], 24))
        alone.append(rows[0].token_ids)
    said = []

    def leave_after_three(piece: str) -> None:
        said.append(piece)
        if len(said) == 3:
            rows[0].cancelled.set()

    rows = rows_of(inputs, 24)
    rows[0].sink = leave_after_three
    generate_rows(model, processor, rows)
    assert rows[0].finish_reason == "cancelled" and len(rows[0].token_ids) == 3 and len(said) == 3
    assert [r.token_ids for r in rows[1:]] == alone[1:] and [r.finish_reason for r in rows[1:]] == ["length"] * 2


def test_min_tokens_holds_back_the_end_token(loaded, monkeypatch):
    model, processor = loaded
    [x] = prompts(model, processor, 1)
    generate_rows(model, processor, probe := rows_of([x], 1))
    # The model's first greedy token made an end token: alone it stops at once.
    monkeypatch.setattr(model.generation_config, "eos_token_id", probe[0].token_ids[0])
    rows = [Row(x, 8), Row(x, 8, min_new_tokens=5), Row(x, 6, min_new_tokens=6)]
    generate_rows(model, processor, rows)
    assert [(len(r.token_ids), r.finish_reason) for r in rows[:1]] == [(1, "stop")]
    assert len(rows[1].token_ids) >= 5 and probe[0].token_ids[0] not in rows[1].token_ids[:5]
    assert (len(rows[2].token_ids), rows[2].finish_reason) == (6, "length")


BAD = [{"min_tokens": "3"}, {"min_tokens": -1}, {"min_tokens": 9}, {"min_tokens": 2.5}, {"ignore_eos": "yes"},
       {"ignore_eos": 1}]


def test_bad_min_tokens_and_ignore_eos_are_400(loaded):
    with running(build_app(*loaded, Settings(max_tokens=64))) as url:
        for extra in BAD:
            response = post(url, {"messages": ask("hi", 0), "max_tokens": 8, **extra})
            assert response.status_code == 400 and response.json()["error"]["param"] == next(iter(extra)), extra
