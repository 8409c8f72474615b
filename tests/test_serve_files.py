"""`--allow-local-files` against devices, FIFOs and probing: a 400 at once with one text, and the server stays up."""

from __future__ import annotations

import os
import time

import httpx
import pytest
from test_serve_helpers import image_message, loaded, post, running, user  # noqa: F401

from smvl.serve.app import build_app
from smvl.serve.settings import Settings


@pytest.fixture(scope="module")
def server(loaded):
    with running(build_app(*loaded, Settings(max_tokens=8, allow_local_files=True, max_image_bytes=200_000))) as url:
        yield url


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    return str(path)


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom", "fifo", "/etc", "/nonexistent/x.png", "/root/x"])
def test_only_regular_files_are_read_and_every_refusal_reads_the_same(server, fifo, path):
    path = fifo if path == "fifo" else path
    started = time.time()
    response = post(server, {"messages": image_message(path)}, timeout=15)
    assert response.status_code == 400 and time.time() - started < 5, response.text
    assert response.json()["error"]["message"] == "cannot read this local image file"


def test_the_server_stays_healthy_after_hostile_paths(server, fifo):
    for path in ("/dev/zero", fifo, "/dev/urandom"):
        assert post(server, {"messages": image_message(path)}, timeout=15).status_code == 400
    assert httpx.get(server + "/health").json()["busy"] == 0
    assert post(server, {"messages": user(), "max_tokens": 1}).status_code == 200
