"""`--allow-remote-images` as an attacker would use it: internal addresses, names resolving to them, redirects,
proxies, slow servers and error texts that could map the network. Nothing here leaves this machine: the address
policy is checked without connecting, and the fetching itself against local servers with the policy widened to
127.0.0.1 for the test."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest
from test_serve_helpers import data_uri, image_message, loaded, post, running  # noqa: F401

from smvl.serve import remote
from smvl.serve.app import build_app
from smvl.serve.errors import APIError
from smvl.serve.settings import Settings

SETTINGS = {"max_tokens": 8, "allow_remote_images": True, "max_image_bytes": 200_000, "remote_timeout_s": 1.5}
TEXT = "could not fetch the image (only public http(s) addresses are fetched)"


@pytest.fixture
def no_connections(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"connected to {args[0]}")

    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x.png", "http://10.1.2.3/x.png", "http://192.168.0.1/x.png",
                                 "http://169.254.169.254/latest/meta-data/", "http://[::1]:9/x.png",
                                 "http://[::ffff:127.0.0.1]/x.png", "http://0.0.0.0:80/", "http://100.64.0.1/",
                                 "http://224.0.0.1/", "http://localhost:9/x.png", "https://[fe80::1]/x.png",
                                 "ftp://example.com/x.png", "http://127.0.0.1:99999/x.png"])
def test_non_global_addresses_are_refused_before_connecting(no_connections, url):
    with pytest.raises(APIError) as refused:
        remote.fetch_remote(url, Settings(**SETTINGS))
    assert refused.value.status == 400 and refused.value.message == TEXT


def test_a_public_name_resolving_to_a_private_address_is_refused(no_connections, monkeypatch):
    real = socket.getaddrinfo
    answers = {"images.example.com": ["10.0.0.7"], "mixed.example.com": ["93.184.215.14", "127.0.0.1"]}

    def fake(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    for name in answers:
        with pytest.raises(APIError):
            remote.fetch_remote(f"http://{name}/x.png", Settings(**SETTINGS))
    assert remote.public("93.184.215.14") and remote.public("2606:4700::1111")


class Files(http.server.BaseHTTPRequestHandler):
    """/ok.png, redirects (`/to?URL`), a server that trickles a byte at a time, and a record of every path asked."""

    png = b""
    hits: list[str] = []

    def do_GET(self):
        self.hits.append(self.path)
        if self.path == "/ok.png":
            self.answer(200, self.png)
        elif self.path.startswith("/to?"):
            self.send_response(302)
            self.send_header("Location", self.path[4:])
            self.end_headers()
        elif self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)
        else:
            self.answer(404, b"no")

    def answer(self, status: int, body: bytes):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def files():
    import base64

    Files.png = base64.b64decode(data_uri((64, 48)).partition(",")[2])
    Files.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_loopback_is_never_fetched_through_the_server(loaded, files):
    with running(build_app(*loaded, Settings(**SETTINGS))) as url:
        open_port = post(url, {"messages": image_message(files + "/ok.png")})
        closed_port = post(url, {"messages": image_message("http://127.0.0.1:9/ok.png")})
    assert open_port.status_code == closed_port.status_code == 400 and Files.hits == []
    assert open_port.json()["error"]["message"] == closed_port.json()["error"]["message"] == TEXT


@pytest.fixture
def loopback_allowed(monkeypatch):
    """The test-only widening: 127.0.0.1 counts as public, nothing else does; connections are recorded."""
    connected = []
    real = socket.create_connection

    def record(address, *args, **kwargs):
        connected.append(address[0])
        return real(address, *args, **kwargs)

    monkeypatch.setattr(remote, "public", lambda address: address == "127.0.0.1")
    monkeypatch.setattr(socket, "create_connection", record)
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return connected


def test_redirects_are_checked_like_the_first_url(loaded, files, loopback_allowed):
    port = files.rpartition(":")[2]
    with running(build_app(*loaded, Settings(**SETTINGS))) as url:
        def status(image_url):
            return post(url, {"messages": image_message(image_url), "max_tokens": 1}, timeout=30).status_code

        assert status(files + "/ok.png") == 200
        assert status(files + "/to?/ok.png") == 200
        assert status(files + f"/to?http://127.0.0.2:{port}/ok.png") == 400
        assert "127.0.0.2" not in loopback_allowed
        assert status(files + "/to?file:///etc/hostname") == 400
        assert status(files + f"/to?ftp://127.0.0.1:{port}/ok.png") == 400  # fetched as http without the check
        Files.hits.clear()
        assert status(files + "/to?/to?/to?/to?/to?/ok.png") == 400
        assert len(Files.hits) == 4  # the first request and three redirects, then no more
        assert status(files + "/missing.png") == 400


def test_proxies_from_the_environment_are_not_used(loaded, files, loopback_allowed, monkeypatch):
    proxy_hits = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            proxy_hits.append(self.path)
            self.send_response(502)
            self.end_headers()

        def log_message(self, *args):
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.server_address[1]}")
    try:
        with running(build_app(*loaded, Settings(**SETTINGS))) as url:
            response = post(url, {"messages": image_message(files + "/ok.png"), "max_tokens": 1}, trust_env=False)
        assert response.status_code == 200 and proxy_hits == []
    finally:
        proxy.shutdown()


def test_a_trickling_server_is_cut_at_one_deadline(loaded, files, loopback_allowed):
    with running(build_app(*loaded, Settings(**SETTINGS))) as url:
        started = time.time()
        response = post(url, {"messages": image_message(files + "/slow")}, timeout=30)
        assert response.status_code == 400 and time.time() - started < SETTINGS["remote_timeout_s"] + 2
        assert post(url, {"messages": image_message(files + "/ok.png"), "max_tokens": 1}).status_code == 200
