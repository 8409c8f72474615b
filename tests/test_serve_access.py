"""Who may drive the server: web pages cannot (JSON only, loopback or IP Host without a key), an empty key is
refused, the key may come from the environment, and errors do not echo internals."""

from __future__ import annotations

import httpx
import pytest
from test_serve_helpers import image_message, loaded, post, running, user  # noqa: F401

from smvl.serve.app import build_app
from smvl.serve.settings import Settings

NAME = "tiny-vlm"


@pytest.fixture(scope="module")
def server(loaded):
    with running(build_app(*loaded, Settings(model_name=NAME, max_tokens=8))) as url:
        yield url


def test_a_web_page_cannot_post_without_a_preflight(server):
    body = '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}'
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {"Content-Type": kind} if kind else {}
        response = httpx.post(server + "/v1/chat/completions", content=body, headers=headers, timeout=30)
        assert response.status_code == 415, (kind, response.text)
        assert response.json()["error"]["code"] == "unsupported_media_type"
    sent = httpx.post(server + "/v1/chat/completions", content=body, timeout=30,
                      headers={"Content-Type": "application/json; charset=utf-8"})
    assert sent.status_code == 200
    assert httpx.get(server + "/health").json()["busy"] == 0


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io", "localhost.evil.example"])
def test_dns_rebinding_names_are_refused_without_a_key(server, host):
    for method, path in (("GET", "/v1/models"), ("GET", "/health"), ("GET", "/"), ("POST", "/v1/chat/completions")):
        response = httpx.request(method, server + path, headers={"Host": host, "Content-Type": "application/json"},
                                 content=b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}')
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_host", (method, path)


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:8000", "127.0.0.1:9", "[::1]:8000", "192.168.1.20:8000"])
def test_loopback_names_and_ip_addresses_are_answered(server, host):
    assert httpx.get(server + "/v1/models", headers={"Host": host}).status_code == 200


def test_with_a_key_any_host_name_works_and_health_keeps_the_model_id(loaded):
    with running(build_app(*loaded, Settings(model_name=NAME, api_key="sekret", max_tokens=8))) as url:
        headers = {"Host": "gpu-box.example", "Authorization": "Bearer sekret"}
        assert httpx.get(url + "/v1/models", headers=headers).json()["data"][0]["id"] == NAME
        health = httpx.get(url + "/health", headers={"Host": "gpu-box.example"}).json()
        assert health["status"] == "ok" and NAME not in str(health)


def test_an_empty_key_is_refused_and_the_key_may_come_from_the_environment(tiny_model):
    from smvl.cli import build_parser
    from smvl.errors import UserError
    from smvl.serve.commands import api_key, cmd_serve

    with pytest.raises(UserError, match="empty"):  # refused before the model is loaded
        cmd_serve(build_parser().parse_args(["serve", str(tiny_model), "--api-key", ""]))
    assert api_key(None, {"SMVL_API_KEY": "from-env"}) == "from-env"
    assert api_key("flag", {"SMVL_API_KEY": "from-env"}) == "flag"
    assert api_key(None, {}) is None
    with pytest.raises(UserError, match="SMVL_API_KEY"):
        api_key(None, {"SMVL_API_KEY": " "})
    with pytest.raises(ValueError):
        Settings(api_key="")


def test_errors_do_not_echo_internals(server):
    not_an_image = post(server, {"messages": image_message("data:image/png;base64,aGVsbG8gd29ybGQ=")})
    assert not_an_image.status_code == 400 and "0x" not in not_an_image.text and "_io" not in not_an_image.text
    # Jinja's UndefinedError (was a 500) and json's TypeError about jinja's Undefined (was echoed).
    for extra, internal in (({"reasoning_content": 5}, "int object"), ({"tool_calls": "abc"}, "Undefined")):
        messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", **extra}]
        response = post(server, {"messages": messages, "max_tokens": 1})
        assert response.status_code == 400 and internal not in response.text, response.text
    assert httpx.get(server + "/health").json()["busy"] == 0
    assert post(server, {"messages": user(), "max_tokens": 1}).status_code == 200
