"""Helpers for the server tests (no tests here): the API in-process on a free loopback port, images as data URIs,
requests. Test modules import the `loaded` fixture from here."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def loaded(tiny_model):
    from smvl.infer.generate import load

    return load(tiny_model, "fp32", "cpu")


def data_uri(size=(96, 96), colour=(220, 30, 30), fmt="PNG") -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(app):
    """Serve `app` with uvicorn on a background thread; yields its base URL and stops it afterwards."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True, name="uvicorn")
    thread.start()
    deadline = time.time() + 30
    while not server.started and thread.is_alive() and time.time() < deadline:
        time.sleep(0.02)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def user(text="图中有几个物体？", image=True):
    content = ([{"type": "image_url", "image_url": {"url": data_uri()}}] if image else []) + [
        {"type": "text", "text": text}]
    return [{"role": "user", "content": content}]


def image_message(url: str, n: int = 1):
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}] * n
             + [{"type": "text", "text": "这是什么？"}]}]


def post(url: str, body, timeout: float = 60, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body)
    return httpx.post(url + "/v1/chat/completions", content=content, headers={"Content-Type": "application/json"},
                      timeout=timeout, **kwargs)
