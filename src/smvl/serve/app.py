"""The OpenAI-compatible API and the web page, on FastAPI.

Requests are parsed and their images decoded off the event loop; generation runs on the Worker's one thread,
in batches of concurrent requests.
A request's body is received first (within a deadline and a byte budget shared by all bodies, see bodies.py),
then it takes a queue slot, so at most `queue_depth` parsed requests and generations are in memory at once;
one more gets 503 at once instead of waiting in an unbounded queue.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from smvl.data.samples.video import VideoSampling
from smvl.serve.bodies import Bodies, busy, parse_json
from smvl.serve.errors import APIError, install_handlers
from smvl.serve.example import example
from smvl.serve.guard import check_host, check_json, check_key
from smvl.serve.page import load_page
from smvl.serve.requests import parse_chat_request
from smvl.serve.deltas import Deltas
from smvl.serve.responses import chunk, completion, event, finish_reason, logprobs_of, new_id, usage
from smvl.serve.settings import Settings
from smvl.serve.worker import Worker


def create_app(model_dir, settings: Settings | None = None) -> FastAPI:
    """Load the model folder and build the app; run it with uvicorn."""
    from smvl.infer.generate import load

    settings = settings or Settings()
    model, processor = load(model_dir, settings.dtype, settings.device)
    name = settings.model_name or Path(model_dir).resolve().name
    return build_app(model, processor, replace(settings, model_name=name))


def parse_body(raw: bytearray, settings: Settings, model_name: str, sampling=None):
    return parse_chat_request(parse_json(raw, settings), settings, model_name, sampling)


async def cancel_when_gone(request: Request, cancel: threading.Event) -> None:
    """Sets `cancel` when the client disconnects; the body must have been read already."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    cancel.set()


def build_app(model, processor, settings: Settings) -> FastAPI:
    """The app for an already loaded model (tests and callers that load once and serve several apps)."""
    name = settings.model_name or "smvl"
    worker = Worker(model, processor, settings)
    page, page_headers = load_page()
    video_processor = getattr(processor, "video_processor", None)
    sampling = VideoSampling.of(video_processor) if video_processor is not None else None  # frames per video_url

    @asynccontextmanager
    async def lifespan(app):
        yield
        worker.close()

    bodies = Bodies(settings)

    async def host(request: Request) -> None:
        check_host(request, settings)

    async def authenticate(request: Request) -> None:
        check_key(request, settings)

    app = FastAPI(title="smvl", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan,
                  dependencies=[Depends(host)])
    app.state.worker = worker
    install_handlers(app)

    @app.get("/health")
    async def health():
        status = {"status": "ok", "busy": worker.busy, "queue_depth": settings.queue_depth}
        return status if settings.api_key is not None else {**status, "model": name}  # the key guards the id

    @app.get("/", response_class=HTMLResponse)
    async def web_page():
        return HTMLResponse(page, headers=page_headers)

    @app.get("/example.json")  # no key: the page shows it before the user has typed one, and it is public data
    async def example_json():
        return await asyncio.to_thread(example)

    @app.get("/v1/models", dependencies=[Depends(authenticate)])
    async def models():
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "smvl"}]}

    @app.post("/v1/chat/completions", dependencies=[Depends(authenticate)])
    async def chat_completions(request: Request):
        check_json(request)
        raw = await bodies.read(request)
        try:
            if not worker.try_acquire():
                raise busy(settings)
            try:
                req = await asyncio.to_thread(parse_body, raw, settings, name, sampling)
            except BaseException:
                worker.release(arrived=False)
                raise
        finally:
            bodies.done(raw)
        handed_over = False
        try:
            rid, created = new_id()
            if not req.stream:
                cancel = threading.Event()
                watch = asyncio.create_task(cancel_when_gone(request, cancel))
                try:
                    generation, text = await worker.complete(req, cancel)
                finally:
                    watch.cancel()
                return completion(rid, created, name, text, generation, req)
            generation, pieces = await worker.start_stream(req)
            handed_over = True  # the worker releases the slot when generation ends
        finally:
            if not handed_over:
                worker.release()

        async def events():
            deltas, sent = Deltas(req), 0  # sent: logprobs entries already sent

            def logprobs(upto: int | None) -> dict | None:
                """The entries not sent yet, up to `upto` (None: all); None when there are none."""
                nonlocal sent
                upto = len(generation.logprobs) if upto is None else upto
                if upto <= sent:
                    return None
                out, sent = logprobs_of(generation, req, sent, upto), upto
                return out

            try:
                yield chunk(rid, created, name, {"role": "assistant", "content": ""})
                while (item := await pieces.get()) is not None:
                    if isinstance(item, APIError):
                        yield event(item.body())
                        break
                    piece, upto = item
                    for delta in deltas.feed(piece):  # a piece's logprobs go with its first chunk
                        yield chunk(rid, created, name, delta, logprobs=logprobs(upto))
                else:
                    for delta in deltas.flush():
                        yield chunk(rid, created, name, delta, logprobs=logprobs(None))
                    # entries whose text was held back and never sent (a stop string's) go with the last chunk
                    yield chunk(rid, created, name, {}, finish_reason(generation, bool(deltas.called)),
                                logprobs=logprobs(None))
                    if req.include_usage:
                        yield chunk(rid, created, name, None, usage_=usage(generation))
                yield event("[DONE]")
            finally:
                generation.cancelled.set()  # the client left (or the stream ended): stop generating for nobody

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app
