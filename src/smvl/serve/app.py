"""The OpenAI-compatible API and the web page, on FastAPI.

One model, one generation at a time on a worker thread (the event loop only parses, validates and streams);
at most `queue_depth` requests generate or wait, one more gets 503 at once rather than an unbounded queue.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from smvl.infer.generate import inputs_for, sampling, stream_inputs
from smvl.serve.limits import Limits
from smvl.serve.requests import APIError, parse_chat_request

PAGE = Path(__file__).with_name("page.html")


def error(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def create_app(model, processor, model_name: str, limits: Limits | None = None, api_key: str | None = None) -> FastAPI:
    limits = limits or Limits()
    app = FastAPI(title="smvl", docs_url=None, redoc_url=None)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smvl-generate")
    state = {"busy": 0}

    @app.middleware("http")
    async def authenticate(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1/"):
            if request.headers.get("authorization", "") != f"Bearer {api_key}":
                return error(APIError(401, "missing or wrong API key", code="invalid_api_key",
                                      kind="authentication_error"))
        return await call_next(request)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_name, "busy": state["busy"], "queue_depth": limits.queue_depth}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "smvl"}]}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return PAGE.read_text(encoding="utf-8")

    def prepare(req: dict):
        inputs = inputs_for(model, processor, [req["messages"]], [req["images"]], req["thinking"])
        prompt_tokens = int(inputs["input_ids"].shape[1])
        if prompt_tokens > limits.max_prompt_tokens:
            raise APIError(400, f"the prompt is {prompt_tokens} tokens, over the {limits.max_prompt_tokens} limit",
                           "messages", "context_length_exceeded")
        return inputs, prompt_tokens

    def options(req: dict) -> dict:
        return {"max_new_tokens": req["max_tokens"], "temperature": req["temperature"], "top_p": req["top_p"]}

    def complete(req: dict) -> tuple[str, int, int, str]:
        inputs, prompt_tokens = prepare(req)
        generated = model.generate(**inputs, **sampling(**options(req)))[0, prompt_tokens:]
        finish = "stop" if processor.tokenizer.eos_token_id in generated.tolist() else "length"
        text = processor.decode(generated, skip_special_tokens=True).strip()
        return text, prompt_tokens, int((generated != processor.tokenizer.pad_token_id).sum()), finish

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return error(APIError(400, f"the request body is not valid JSON: {exc}"))
        try:
            req = parse_chat_request(body, limits, model_name)
        except APIError as exc:
            return error(exc)
        if state["busy"] >= limits.queue_depth:
            return error(APIError(503, f"server busy: {limits.queue_depth} requests already queued; retry later",
                                  code="server_busy", kind="server_error"))
        state["busy"] += 1
        loop = asyncio.get_running_loop()
        rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if not req["stream"]:
            try:
                text, prompt_tokens, completion_tokens, finish = await loop.run_in_executor(worker, complete, req)
            except APIError as exc:
                return error(exc)
            finally:
                state["busy"] -= 1
            return {
                "id": rid, "object": "chat.completion", "created": created, "model": model_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens},
            }
        try:
            inputs, _ = await loop.run_in_executor(worker, prepare, req)
        except APIError as exc:
            state["busy"] -= 1
            return error(exc)
        pieces: asyncio.Queue = asyncio.Queue()

        def release() -> None:
            state["busy"] -= 1

        def produce():
            # The slot is released when generation ends, whether or not the client is still listening.
            try:
                for piece in stream_inputs(model, processor, inputs, **options(req)):
                    loop.call_soon_threadsafe(pieces.put_nowait, piece)
            finally:
                loop.call_soon_threadsafe(release)
                loop.call_soon_threadsafe(pieces.put_nowait, None)

        def chunk(delta: dict, finish: str | None = None) -> str:
            data = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model_name,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        async def events():
            yield chunk({"role": "assistant", "content": ""})
            while (piece := await pieces.get()) is not None:
                yield chunk({"content": piece})
            yield chunk({}, "stop")
            yield "data: [DONE]\n\n"

        loop.run_in_executor(worker, produce)
        return StreamingResponse(events(), media_type="text/event-stream")

    return app
