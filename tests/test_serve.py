"""The OpenAI-compatible server: the official client works unchanged; bad requests get OpenAI-shaped 4xx."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import psutil
import pytest

from serve_helpers import data_uri, running
from smvl.infer.generate import load
from smvl.serve.app import create_app
from smvl.serve.limits import Limits


@pytest.fixture(scope="module")
def loaded(demo_run):
    return load(demo_run / "final")


@pytest.fixture(scope="module")
def server(loaded):
    limits = Limits(max_image_bytes=200_000, max_images=2, max_tokens=64, max_prompt_tokens=400, queue_depth=64)
    with running(create_app(*loaded, "smvl-demo", limits)) as url:
        yield url


def user(text="图中有几个物体？", image=True):
    content = ([{"type": "image_url", "image_url": {"url": data_uri()}}] if image else []) + [
        {"type": "text", "text": text}]
    return [{"role": "user", "content": content}]


def test_official_openai_client_plain_and_streaming(server):
    client = openai.OpenAI(base_url=server + "/v1", api_key="unused")
    assert [m.id for m in client.models.list().data] == ["smvl-demo"]
    reply = client.chat.completions.create(model="smvl-demo", messages=user(), max_tokens=8)
    assert reply.choices[0].message.content and reply.usage.prompt_tokens > 100
    pieces = [c.choices[0].delta.content or "" for c in
              client.chat.completions.create(model="smvl-demo", messages=user(), max_tokens=8, stream=True)]
    assert "".join(pieces).strip() == reply.choices[0].message.content
    text_only = client.chat.completions.create(model="smvl-demo", messages=user("你好", image=False), max_tokens=4)
    assert text_only.choices[0].finish_reason in ("stop", "length")
    assert httpx.get(server + "/health").json()["status"] == "ok"


BAD = {
    "malformed JSON": (b"{not json", 400, None),
    "unknown model": ({"model": "gpt-9", "messages": user()}, 404, "model_not_found"),
    "bad base64": ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]}]}, 400, "invalid_image"),
    "too many images": ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_uri()}}] * 3}]}, 400, "too_many_images"),
    "image bytes": ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_uri((1200, 1200), fmt="BMP")}}]}]}, 413, "image_too_large"),
    "max_tokens": ({"messages": user(), "max_tokens": 100000}, 400, None),
    "remote url": ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/x.png"}}]}]}, 400, "remote_images_disabled"),
    "local path": ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "/etc/hostname"}}]}]}, 400, "local_files_disabled"),
    "prompt too long": ({"messages": user("很长的问题" * 300)}, 400, "context_length_exceeded"),
    "no messages": ({"messages": []}, 400, None),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_requests_get_openai_shaped_errors(server, case):
    body, status, code = BAD[case]
    content = body if isinstance(body, bytes) else json.dumps(body)
    response = httpx.post(server + "/v1/chat/completions", content=content,
                          headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and "type" in error and "param" in error
    if code:
        assert error["code"] == code


def test_api_key_and_queue_limit(loaded):
    with running(create_app(*loaded, "m", Limits(queue_depth=1), api_key="sekret")) as url:
        body = {"messages": user(), "max_tokens": 32}
        assert httpx.post(url + "/v1/chat/completions", json=body).status_code == 401
        assert httpx.get(url + "/v1/models", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(url + "/health").status_code == 200

        async def burst():
            async with httpx.AsyncClient(timeout=120, headers={"Authorization": "Bearer sekret"}) as client:
                return await asyncio.gather(*[client.post(url + "/v1/chat/completions", json=body) for _ in range(4)])

        codes = sorted(r.status_code for r in asyncio.run(burst()))
        assert codes[0] == 200 and 503 in codes
        assert all(r.json()["error"]["code"] == "server_busy" for r in asyncio.run(burst()) if r.status_code == 503)


def settled_rss(process) -> int:
    """RSS after garbage collection and returning freed heap to the OS, so allocator slack is not read as a leak."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    return process.memory_info().rss


def test_load_mixed_requests_keep_the_server_up_without_leaking(server):
    valid = {"messages": user(), "max_tokens": 4}
    oversized = BAD["image bytes"][0]
    malformed = b'{"messages": ['

    async def one_round():
        async with httpx.AsyncClient(timeout=300) as client:
            jobs = []
            for i in range(54):
                kind = ("valid", "oversized", "malformed")[i % 3]
                body = malformed if kind == "malformed" else json.dumps(valid if kind == "valid" else oversized)
                jobs.append((kind, client.post(server + "/v1/chat/completions", content=body,
                                               headers={"Content-Type": "application/json"})))
            responses = await asyncio.gather(*(job for _, job in jobs))
            return [(kind, r) for (kind, _), r in zip(jobs, responses)]

    process = psutil.Process()
    rss = []
    for _ in range(4):
        for kind, response in asyncio.run(one_round()):
            if kind == "valid":
                assert response.status_code == 200, response.text
                assert response.json()["choices"][0]["message"]["role"] == "assistant"
            else:
                assert 400 <= response.status_code < 500
        rss.append(settled_rss(process))
        assert httpx.get(server + "/health").json()["busy"] == 0
    # the first round warms caches and allocator pools; after it, memory must stay flat
    assert rss[3] - rss[1] < 100 * 2**20, [r // 2**20 for r in rss]


def test_a_client_that_leaves_mid_stream_frees_its_slot(server):
    import time

    body = {"messages": user(), "max_tokens": 32, "stream": True}
    with httpx.stream("POST", server + "/v1/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        next(response.iter_lines())
    deadline = time.time() + 30
    while httpx.get(server + "/health").json()["busy"] and time.time() < deadline:
        time.sleep(0.1)
    assert httpx.get(server + "/health").json()["busy"] == 0
