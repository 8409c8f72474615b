"""Who may call the server: the API key, the Host header, and JSON-only request bodies.

Without a key, a web page the user visits could otherwise drive a local server: a `text/plain` POST needs no
CORS preflight, and DNS rebinding makes a hostile name resolve to 127.0.0.1 so that the page may read answers.
Requiring `application/json` forces the preflight (which this server never grants); accepting only loopback names
and IP literals as Host defeats rebinding, which needs a name the attacker controls.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import Request

from smvl.serve.errors import APIError
from smvl.serve.settings import Settings

LOOPBACK_NAMES = ("localhost", "localhost.")


def host_name(header: str) -> str:
    """'example.com:8000' -> 'example.com'; '[::1]:8000' -> '::1'."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def host_allowed(header: str) -> bool:
    name = host_name(header.strip().lower())
    if name in LOOPBACK_NAMES:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def check_host(request: Request, settings: Settings) -> None:
    if settings.api_key is None and not host_allowed(request.headers.get("host", "")):
        raise APIError(400, "this server answers only requests to localhost or an IP address; "
                            "serve with --api-key to use a host name", code="invalid_host")


def check_json(request: Request) -> None:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise APIError(415, "the request body must be sent as Content-Type: application/json",
                       code="unsupported_media_type")


def check_key(request: Request, settings: Settings) -> None:
    if settings.api_key is None:
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {settings.api_key}".encode()):
        raise APIError(401, "missing or wrong API key (Authorization: Bearer KEY)", code="invalid_api_key",
                       kind="authentication_error")
