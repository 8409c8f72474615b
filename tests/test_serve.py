"""The OpenAI-compatible server on the tiny model: the official client works unchanged, bad requests get
OpenAI-shaped 4xx, the queue is bounded, and a load of mixed requests neither kills the server nor leaks memory."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import openai
import psutil
import pytest
from test_serve_helpers import data_uri, image_message, loaded, post, running, user  # noqa: F401

from smvl.serve.app import build_app, create_app
from smvl.serve.settings import Settings

NAME = "tiny-vlm"
LIMITS = {"model_name": NAME, "max_image_bytes": 200_000, "max_pixels": 1_000_000, "max_images": 2,
          "max_tokens": 64, "max_prompt_tokens": 400, "queue_depth": 64}


@pytest.fixture(scope="module")
def server(loaded):
    with running(build_app(*loaded, Settings(**LIMITS))) as url:
        yield url


def test_official_openai_client_plain_and_streaming(server):
    client = openai.OpenAI(base_url=server + "/v1", api_key="unused")
    assert [m.id for m in client.models.list().data] == [NAME]
    reply = client.chat.completions.create(model=NAME, messages=user(), max_tokens=8)
    assert reply.object == "chat.completion" and reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content and reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 16 and 0 < reply.usage.completion_tokens <= 8
    chunks = list(client.chat.completions.create(model=NAME, messages=user(), max_tokens=8, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip() == \
        reply.choices[0].message.content  # greedy: the stream says exactly what the plain answer says
    assert chunks[-2].choices[0].finish_reason == reply.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == reply.usage.total_tokens
    text_only = client.chat.completions.create(model=NAME, messages=user("你好", image=False), max_tokens=4)
    assert text_only.usage.prompt_tokens < reply.usage.prompt_tokens


def test_raw_stream_is_openai_sse_ending_with_done(server):
    body = {"messages": user(), "max_tokens": 4, "stream": True}
    with httpx.stream("POST", server + "/v1/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1


def test_thinking_switch_reaches_the_chat_template(server):
    off = post(server, {"messages": user(), "max_tokens": 1}).json()["usage"]["prompt_tokens"]
    on = post(server, {"messages": user(), "max_tokens": 1, "chat_template_kwargs": {"enable_thinking": True}})
    # Qwen3's template closes an empty <think></think> block in the prompt when thinking is off.
    assert on.json()["usage"]["prompt_tokens"] < off
    assert post(server, {"messages": user(), "max_tokens": 1, "enable_thinking": True}).json()["usage"] == \
        on.json()["usage"]


def image_part(url):
    return {"messages": image_message(url)}


BAD = {
    "malformed JSON": (b"{not json", 400, "invalid_json"),
    "not an object": (b"[1, 2]", 400, None),
    "unknown model": ({"model": "gpt-9", "messages": user()}, 404, "model_not_found"),
    "bad base64": (image_part("data:image/png;base64,@@@"), 400, "invalid_image"),
    "not base64": (image_part("data:image/png,rawbytes"), 400, "invalid_image"),
    "not an image": (image_part("data:image/png;base64,aGVsbG8gd29ybGQ="), 400, "invalid_image"),
    "too many images": ({"messages": image_message(data_uri(), 3)}, 400, "too_many_images"),
    "image bytes": (image_part(data_uri((400, 400), fmt="BMP")), 413, "image_too_large"),
    "image pixels": (image_part(data_uri((1200, 1000))), 413, "image_too_large"),
    "max_tokens": ({"messages": user(), "max_tokens": 100000}, 400, None),
    "max_tokens type": ({"messages": user(), "max_tokens": "8"}, 400, None),
    "temperature": ({"messages": user(), "temperature": 5}, 400, None),
    "n": ({"messages": user(), "n": 2}, 400, None),
    "remote url": (image_part("http://127.0.0.1:9/x.png"), 400, "remote_images_disabled"),
    "local path": (image_part("/etc/hostname"), 400, "local_files_disabled"),
    "prompt tokens": ({"messages": user("很长的问题" * 100)}, 400, "context_length_exceeded"),
    "prompt characters": ({"messages": user("x" * 20000, image=False)}, 400, "context_length_exceeded"),
    "no messages": ({"messages": []}, 400, None),
    "bad role": ({"messages": [{"role": "robot", "content": "hi"}]}, 400, None),
    "bad part": ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, 400, None),
    "bad content": ({"messages": [{"role": "user", "content": 42}]}, 400, None),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_requests_get_openai_shaped_errors(server, case):
    body, status, code = BAD[case]
    response = post(server, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["type"] == "invalid_request_error"
    if code:
        assert error["code"] == code


def test_unknown_routes_oversized_bodies_and_health(server):
    assert httpx.get(server + "/v1/nothing").json()["error"]["code"] == "not_found"
    assert httpx.get(server + "/v1/chat/completions").status_code == 405
    huge = post(server, b"x" * (Settings(**LIMITS).body_limit + 1))
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "request_too_large"
    health = httpx.get(server + "/health").json()
    assert health == {"status": "ok", "model": NAME, "busy": 0, "queue_depth": 64}
    assert "<script>" in httpx.get(server + "/").text


def test_api_key(tiny_model):
    with running(create_app(tiny_model, Settings(api_key="sekret", max_tokens=8))) as url:
        assert post(url, {"messages": user(), "max_tokens": 2}).status_code == 401
        wrong = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(url + "/health").status_code == 200 and httpx.get(url + "/").status_code == 200
        client = openai.OpenAI(base_url=url + "/v1", api_key="sekret")
        assert client.models.list().data[0].id == tiny_model.name
        assert client.chat.completions.create(model=tiny_model.name, messages=user(), max_tokens=2).choices
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="nope").models.list()


def test_queue_past_its_depth_answers_503(loaded):
    app = build_app(*loaded, Settings(queue_depth=2, max_tokens=64))
    with running(app) as url:
        body = {"messages": user(), "max_tokens": 4}
        # Hold the model's one worker thread, so the first two requests wait in the queue for certain.
        hold = threading.Event()
        app.state.worker.executor.submit(hold.wait)

        async def burst():
            async with httpx.AsyncClient(timeout=120) as client:
                waiting = [asyncio.create_task(client.post(url + "/v1/chat/completions", json=body))
                           for _ in range(2)]
                while (await client.get(url + "/health")).json()["busy"] < 2:
                    await asyncio.sleep(0.01)
                refused = await asyncio.gather(*[client.post(url + "/v1/chat/completions", json=body)
                                                 for _ in range(3)])
                hold.set()
                return await asyncio.gather(*waiting), refused

        answered, refused = asyncio.run(burst())
        assert [r.status_code for r in answered] == [200, 200]
        assert [r.status_code for r in refused] == [503] * 3
        assert {r.json()["error"]["code"] for r in refused} == {"server_busy"}
        assert httpx.get(url + "/health").json()["busy"] == 0
        assert httpx.post(url + "/v1/chat/completions", json=body, timeout=60).status_code == 200


def test_local_files_when_allowed(loaded, tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 48), (0, 90, 200)).save(tmp_path / "ok.png")
    (tmp_path / "big.bin").write_bytes(b"\0" * 300_000)
    with running(build_app(*loaded, Settings(**{**LIMITS, "allow_local_files": True}))) as url:
        assert post(url, {**image_part(str(tmp_path / "ok.png")), "max_tokens": 2}).status_code == 200
        assert post(url, {**image_part(f"file://{tmp_path}/ok.png"), "max_tokens": 2}).status_code == 200
        assert post(url, image_part("relative.png")).status_code == 400
        assert post(url, image_part(str(tmp_path / "missing.png"))).json()["error"]["code"] == "invalid_image"
        assert post(url, image_part(str(tmp_path / "big.bin"))).status_code == 413


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


def test_load_of_mixed_requests_keeps_the_server_up_without_leaking(server):
    """54 concurrent requests a round (valid, oversized, malformed, streaming), five rounds."""
    kinds = ("valid", "oversized", "malformed", "stream", "bad image", "too many")
    bodies = {"valid": {"messages": user(), "max_tokens": 4},
              "stream": {"messages": user(), "max_tokens": 4, "stream": True},
              "oversized": BAD["image bytes"][0], "bad image": BAD["bad base64"][0],
              "too many": BAD["too many images"][0]}

    async def one(client, kind):
        body = b'{"messages": [' if kind == "malformed" else json.dumps(bodies[kind]).encode()
        response = await client.post(server + "/v1/chat/completions", content=body,
                                     headers={"Content-Type": "application/json"})
        return kind, response

    async def one_round():
        async with httpx.AsyncClient(timeout=300) as client:
            return await asyncio.gather(*[one(client, kinds[i % len(kinds)]) for i in range(54)])

    process = psutil.Process()
    rss, busy = [], 0
    for _ in range(5):
        for kind, response in asyncio.run(one_round()):
            if response.status_code == 503:  # allowed, counted; the queue (64) is deeper than a round (54)
                busy += 1
            elif kind == "valid":
                assert response.status_code == 200, response.text
                message = response.json()["choices"][0]["message"]
                assert message["role"] == "assistant" and message["content"]
            elif kind == "stream":
                assert response.status_code == 200 and response.text.rstrip().endswith("data: [DONE]")
            else:
                assert 400 <= response.status_code < 500 and "error" in response.json(), (kind, response.text)
        rss.append(settled_rss(process))
        assert httpx.get(server + "/health").json() == {"status": "ok", "model": NAME, "busy": 0, "queue_depth": 64}
    assert busy == 0
    # The first rounds warm caches and allocator pools; after them, memory must stay flat.
    assert rss[-1] - rss[2] < 64 * 2**20, [r // 2**20 for r in rss]


def test_a_client_that_leaves_mid_stream_stops_generation_and_frees_its_slot(loaded):
    with running(build_app(*loaded, Settings(max_tokens=3000))) as url:
        # 3000 tokens take the tiny model seconds on a CPU; a client leaving must not cost them.
        body = {"messages": user(), "max_tokens": 3000, "stream": True}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as response:
            assert response.status_code == 200
            next(response.iter_lines())
        left = time.time()
        while httpx.get(url + "/health").json()["busy"] and time.time() < left + 30:
            time.sleep(0.02)
        assert httpx.get(url + "/health").json()["busy"] == 0 and time.time() - left < 2
        assert post(url, {"messages": user(), "max_tokens": 2}).status_code == 200


def test_serve_binds_loopback_by_default():
    from smvl.cli import build_parser

    args = build_parser().parse_args(["serve", "some/model"])
    assert args.host == "127.0.0.1" and args.port == 8000 and not args.allow_local_files
    assert not args.allow_remote_images and args.api_key is None
