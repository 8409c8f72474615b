"""Hostile bodies against a running server: JSON that would cost memory or recursion, slow senders, clients that
leave before their answer. Each gets a 4xx (or is dropped) in bounded time, and the server stays healthy."""

from __future__ import annotations

import socket
import time
import types

import httpx
import psutil
import pytest
from test_serve_helpers import loaded, post, running, user  # noqa: F401

from smvl.serve.app import build_app
from smvl.serve.bodies import data_strings, text_bytes
from smvl.serve.settings import MiB, Settings


@pytest.fixture(scope="module")
def server(loaded):
    with running(build_app(*loaded, Settings(max_tokens=8, queue_depth=4))) as url:
        yield url


def healthy(url: str) -> None:
    assert httpx.get(url + "/health").json()["busy"] == 0
    assert post(url, {"messages": user(), "max_tokens": 1}).status_code == 200


def test_many_small_objects_are_refused_before_parsing(server):
    # ~50 MB of `{}`: under the 54 MiB body limit, ~1.2 GB once parsed.
    body = b'{"messages": [' + b"{}," * (17 * MiB) + b"{}]}"
    process = psutil.Process()
    before = process.memory_info().rss
    started = time.time()
    response = post(server, body)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert time.time() - started < 20 and process.memory_info().rss - before < 400 * MiB
    healthy(server)


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"messages": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                                  b'{"n": ' + b"9" * 10_000 + b"}"])
def test_deep_nesting_and_huge_integers_are_a_400(server, body):
    response = post(server, body)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json", response.text
    healthy(server)


def test_millions_of_tiny_data_strings_are_counted_before_any_python_loop(server):
    started = time.time()
    response = post(server, b'{"messages": [' + b'"data:",' * (4 * MiB) + b'"data:"]}')
    assert response.status_code == 400 and response.json()["error"]["code"] == "too_many_images", response.text
    assert time.time() - started < 10
    healthy(server)


def test_only_the_largest_data_strings_count_as_images():
    image = b'"data:image/png;base64,' + b"A" * 1000 + b'"'
    body = b'{"a": [' + image + b"," + image + b',"data:x"], "b": "data:y\\"z"}'
    assert text_bytes(body, 2) == len(body) - 2 * len(image)
    assert text_bytes(body, 1) == len(body) - len(image)
    escaped = b'["data:\\\\", "data:\\"x", "' + b"\\" * 200 + b'"]'
    # an escaped backslash ends the first, an escaped quote does not end the second; 100 escaped backslashes
    assert sorted(data_strings(escaped)) == [9, 10]


def send_slowly(port: int, seconds: float) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n{")
    sock.settimeout(seconds)
    return sock


def test_slow_senders_do_not_hold_queue_slots_and_time_out(loaded):
    settings = Settings(max_tokens=8, queue_depth=2, body_timeout_s=3)
    with running(build_app(*loaded, settings)) as url:
        port = int(url.rpartition(":")[2])
        slow = [send_slowly(port, 10) for _ in range(5)]
        try:
            time.sleep(0.5)
            assert post(url, {"messages": user(), "max_tokens": 1}, timeout=10).status_code == 200
            for sock in slow:
                assert sock.recv(4096).startswith(b"HTTP/1.1 408")
        finally:
            for sock in slow:
                sock.close()
        healthy(url)


def test_a_client_that_leaves_a_plain_request_stops_generation_and_frees_its_slot(loaded):
    with running(build_app(*loaded, Settings(max_tokens=3000))) as url:
        # 3000 tokens take the tiny model seconds on a CPU; a client leaving must not cost them.
        with pytest.raises(httpx.TimeoutException):
            post(url, {"messages": user(), "max_tokens": 3000}, timeout=1)
        left = time.time()
        while httpx.get(url + "/health").json()["busy"] and time.time() < left + 30:
            time.sleep(0.02)
        assert httpx.get(url + "/health").json()["busy"] == 0 and time.time() - left < 2
        healthy(url)


def test_the_body_deadline_is_a_408_on_every_python(loaded, monkeypatch):
    """Before 3.11 asyncio.wait_for raises asyncio.TimeoutError, which is not TimeoutError; pretend so here."""
    from smvl.serve import bodies

    class OldTimeout(Exception):
        pass

    async def old_wait_for(awaitable, timeout):
        awaitable.close()
        raise OldTimeout

    monkeypatch.setattr(bodies, "asyncio", types.SimpleNamespace(TimeoutError=OldTimeout, wait_for=old_wait_for))
    with running(build_app(*loaded, Settings(max_tokens=8))) as url:
        response = post(url, {"messages": user(), "max_tokens": 1}, timeout=10)
        assert response.status_code == 408 and response.json()["error"]["code"] == "request_timeout"
