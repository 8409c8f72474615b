"""The OpenAI-compatible API and the web page, on FastAPI.

Requests are parsed and their images decoded off the event loop; generation runs on the Worker's one thread.
A request takes a queue slot before its body is read, so at most `queue_depth` bodies and generations are in
memory at once; one more gets 503 at once instead of waiting in an unbounded queue.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from smvl.serve.errors import APIError, install_handlers
from smvl.serve.requests import parse_chat_request
from smvl.serve.responses import chunk, completion, event, finish_reason, new_id, usage
from smvl.serve.settings import Settings
from smvl.serve.worker import Worker

PAGE = Path(__file__).with_name("page.html")


def create_app(model_dir, settings: Settings | None = None) -> FastAPI:
    """Load the model folder and build the app; run it with uvicorn."""
    from smvl.infer.generate import load

    settings = settings or Settings()
    model, processor = load(model_dir, settings.dtype, settings.device)
    name = settings.model_name or Path(model_dir).resolve().name
    return build_app(model, processor, replace(settings, model_name=name))


async def read_body(request: Request, settings: Settings) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.body_limit:
        raise APIError(413, f"the request body is over {settings.body_limit} bytes", code="request_too_large")
    body = bytearray()

    async def receive() -> None:
        async for piece in request.stream():
            body.extend(piece)
            if len(body) > settings.body_limit:
                raise APIError(413, f"the request body is over {settings.body_limit} bytes",
                               code="request_too_large")

    try:
        await asyncio.wait_for(receive(), settings.body_timeout_s)
    except TimeoutError:
        raise APIError(408, f"the request body did not arrive within {settings.body_timeout_s:g} s",
                       code="request_timeout") from None
    return bytes(body)


def parse_body(raw: bytes, settings: Settings, model_name: str):
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    return parse_chat_request(body, settings, model_name)


def build_app(model, processor, settings: Settings) -> FastAPI:
    """The app for an already loaded model (tests and callers that load once and serve several apps)."""
    name = settings.model_name or "smvl"
    worker = Worker(model, processor, settings)
    page = PAGE.read_text(encoding="utf-8")

    @asynccontextmanager
    async def lifespan(app):
        yield
        worker.close()

    app = FastAPI(title="smvl", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.worker = worker
    install_handlers(app)

    async def authenticate(request: Request) -> None:
        if settings.api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {settings.api_key}".encode()):
            raise APIError(401, "missing or wrong API key (Authorization: Bearer KEY)", code="invalid_api_key",
                           kind="authentication_error")

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": name, "busy": worker.busy, "queue_depth": settings.queue_depth}

    @app.get("/", response_class=HTMLResponse)
    async def web_page():
        return page

    @app.get("/v1/models", dependencies=[Depends(authenticate)])
    async def models():
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "smvl"}]}

    @app.post("/v1/chat/completions", dependencies=[Depends(authenticate)])
    async def chat_completions(request: Request):
        if not worker.try_acquire():
            raise APIError(503, f"the server is busy ({settings.queue_depth} requests queued); retry later",
                           code="server_busy", kind="server_error")
        handed_over = False
        try:
            raw = await read_body(request, settings)
            req = await asyncio.to_thread(parse_body, raw, settings, name)
            del raw
            rid, created = new_id()
            if not req.stream:
                generation, text = await worker.complete(req)
                return completion(rid, created, name, text, generation)
            generation, pieces = await worker.start_stream(req)
            handed_over = True  # the worker releases the slot when generation ends
        finally:
            if not handed_over:
                worker.release()

        async def events():
            try:
                yield chunk(rid, created, name, {"role": "assistant", "content": ""})
                while (piece := await pieces.get()) is not None:
                    if isinstance(piece, APIError):
                        yield event(piece.body())
                        break
                    yield chunk(rid, created, name, {"content": piece})
                else:
                    yield chunk(rid, created, name, {}, finish_reason(generation))
                    if req.include_usage:
                        yield chunk(rid, created, name, None, usage_=usage(generation))
                yield event("[DONE]")
            finally:
                generation.cancelled.set()  # the client left (or the stream ended): stop generating for nobody

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app
