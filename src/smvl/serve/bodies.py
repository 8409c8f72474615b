"""Request bodies: received within a deadline and a shared byte budget, then parsed within bounds on memory.

A body is read before its request takes a queue slot, so slow senders cannot lock everyone else out of the
queue; what they hold instead is the bytes they actually sent, counted against one budget for all bodies being
received (`queue_depth` whole bodies), and a 408 after `body_timeout_s`.

Parsed JSON costs up to ~25x its size (`[{},{},...]`), so only image data may be large: everything outside the
`max_images` longest `data:` strings must fit `max_text_bytes`. Nesting past Python's recursion limit is a 400.
"""

from __future__ import annotations

import asyncio
import heapq
import json

from fastapi import Request

from smvl.serve.errors import APIError
from smvl.serve.settings import Settings

MAX_DATA_STRINGS = 100  # strings starting with `data:` besides the images: texts may begin so, but not many



def too_large(limit: int, what: str = "the request body") -> APIError:
    return APIError(413, f"{what} is over {limit} bytes", code="request_too_large")


def busy(settings: Settings) -> APIError:
    return APIError(503, f"the server is busy ({settings.queue_depth} requests queued); retry later",
                    code="server_busy", kind="server_error")


class Bodies:
    """Receives bodies; `held` bytes of bodies received or being received, at most `budget`."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.budget = settings.queue_depth * settings.body_limit
        self.held = 0  # only touched on the event loop's thread

    async def read(self, request: Request) -> bytearray:
        """The whole body; hand it to `done` once parsed. 413, 503 (budget spent) or 408 otherwise."""
        limit = self.settings.body_limit
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large(limit)
        body = bytearray()

        async def receive() -> None:
            async for piece in request.stream():
                if len(body) + len(piece) > limit:
                    raise too_large(limit)
                if self.held + len(piece) > self.budget:
                    raise busy(self.settings)
                self.held += len(piece)
                body.extend(piece)

        try:
            # asyncio.TimeoutError, not TimeoutError: they are different classes before Python 3.11.
            await asyncio.wait_for(receive(), self.settings.body_timeout_s)
        except asyncio.TimeoutError:
            self.done(body)
            raise APIError(408, f"the request body did not arrive within {self.settings.body_timeout_s:g} s",
                           code="request_timeout") from None
        except BaseException:
            self.done(body)
            raise
        return body

    def done(self, body: bytearray) -> None:
        self.held -= len(body)
        try:
            body.clear()
        except BufferError:  # a parse cut short by shutdown still reads it; it goes with its last reference
            pass


def _escaped(raw: bytes | bytearray, at: int) -> bool:
    """Whether the quote at `at` follows an odd run of backslashes; the run is measured in C, a window at a time."""
    window = 64
    while True:
        piece = raw[max(0, at - window):at]
        run = len(piece) - len(piece.rstrip(b"\\"))
        if run < len(piece) or len(piece) < window:
            return run % 2 == 1
        window *= 2


def data_strings(raw: bytes | bytearray):
    """Lengths of the JSON strings that start with `data:`, quotes included (bytes.find: ~100x a regex's speed).

    A match always lies inside one string the parser will see (after a string's closing quote, valid JSON
    cannot go on with `data:`), so exempting matches never exempts structure."""
    start = raw.find(b'"data:')
    while start >= 0:
        end = raw.find(b'"', start + 1)
        while end >= 0 and _escaped(raw, end):
            end = raw.find(b'"', end + 1)
        if end < 0:
            return  # unterminated: the parser refuses it
        yield end + 1 - start
        start = raw.find(b'"data:', end + 1)


def text_bytes(raw: bytes | bytearray, max_images: int) -> int:
    """The body's size without its `max_images` longest `data:` strings (its images)."""
    return len(raw) - sum(heapq.nlargest(max_images, data_strings(raw)))


def check_size(raw: bytes | bytearray, settings: Settings) -> None:
    if len(raw) <= settings.max_text_bytes:
        return
    # Counted in C first, so that a body of millions of tiny `"data:"` strings costs no Python loop.
    media = settings.max_images + settings.max_videos
    if raw.count(b'"data:') > media + MAX_DATA_STRINGS:
        raise APIError(400, f"at most {settings.max_images} images per request", "messages", "too_many_images")
    if text_bytes(raw, media) > settings.max_text_bytes:
        raise too_large(settings.max_text_bytes, "the request without its images")


def parse_json(raw: bytes | bytearray, settings: Settings):
    check_size(raw, settings)
    try:
        return json.loads(raw)
    except RecursionError:
        raise APIError(400, "the request body is nested too deeply", code="invalid_json") from None
    except (ValueError, UnicodeDecodeError) as exc:  # ValueError includes integers too long to convert
        raise APIError(400, f"the request body is not valid JSON: {exc}", code="invalid_json") from None
