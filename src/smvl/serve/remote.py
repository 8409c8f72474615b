"""Fetching an http(s) image URL (`--allow-remote-images`) without lending the server's network position.

A client must not reach through the server what it cannot reach itself: only global addresses are fetched,
checked after DNS resolution and then connected to by the very address checked (a second lookup could answer
differently); proxies from the environment are not used; each redirect is checked like the first URL; one
deadline covers the whole fetch, so a server sending a byte every few seconds cannot hold a slot; and every
failure has the same text, so that the answers do not map the network.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urljoin, urlsplit

from smvl.serve.errors import APIError
from smvl.serve.settings import Settings

MAX_REDIRECTS = 3
# getaddrinfo has no timeout of its own; lookups run here so that the deadline can stop waiting for one.
RESOLVER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="smvl-resolve")


class Refused(Exception):
    """Any reason not to use a remote image; the client is told none of them."""


def failed() -> APIError:
    return APIError(400, "could not fetch the image (only public http(s) addresses are fetched)", "messages",
                    "invalid_image")


def public(address: str) -> bool:
    ip = ipaddress.ip_address(address.partition("%")[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int, deadline: float) -> str:
    """The address to connect to; Refused unless every address the name has is public."""
    lookup = RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        addresses = [info[4][0] for info in lookup.result(timeout=max(0.0, deadline - time.monotonic()))]
    except (FutureTimeout, OSError, UnicodeError) as exc:
        raise Refused("lookup") from exc
    if not addresses or not all(public(a) for a in addresses):
        raise Refused("address")
    return addresses[0]


class _Pinned(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address
        self.socket: socket.socket | None = None  # kept: `sock` is dropped once a response owns the connection

    def connect(self) -> None:
        self.sock = self.socket = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedTLS(_Pinned):
    default_port = 443

    def connect(self) -> None:
        super().connect()
        self.sock = self.socket = ssl.create_default_context().wrap_socket(self.sock, server_hostname=self.host)


def _expire(connection: _Pinned) -> None:
    """Unblocks a read in progress: a socket timeout applies to one read, not to the whole transfer."""
    sock = connection.socket
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _get(url: str, deadline: float, limit: int) -> tuple[str | None, bytes]:
    """One request: (the redirect's target, b"") or (None, at most `limit` + 1 bytes of the body)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("scheme")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise Refused("port") from exc
    address = resolve(parts.hostname, port, deadline)
    kind = _PinnedTLS if parts.scheme == "https" else _Pinned
    connection = kind(parts.hostname, port, address, timeout=max(0.01, deadline - time.monotonic()))
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _expire, (connection,))
    watchdog.start()
    try:
        path = parts.path or "/"
        connection.request("GET", path + (f"?{parts.query}" if parts.query else ""),
                           headers={"User-Agent": "smvl", "Accept": "image/*"})
        response = connection.getresponse()
        if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
            return urljoin(url, response.getheader("Location")), b""
        if response.status != 200:
            raise Refused("status")
        data = response.read(limit + 1)
        if time.monotonic() > deadline:  # the watchdog may have cut the body short
            raise Refused("deadline")
        return None, data
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise Refused("transfer") from exc
    finally:
        watchdog.cancel()
        connection.close()


def fetch_remote(url: str, settings: Settings) -> bytes:
    """At most `max_image_bytes` + 1 bytes of the image at `url`; APIError 400 with one fixed text otherwise."""
    deadline = time.monotonic() + settings.remote_timeout_s
    try:
        for _ in range(MAX_REDIRECTS + 1):
            url, data = _get(url, deadline, settings.max_image_bytes)
            if url is None:
                return data
        raise Refused("redirects")
    except Refused:
        raise failed() from None
