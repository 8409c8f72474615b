"""The model's one worker thread: a bounded number of queue slots, generation off the event loop, cancellation."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from jinja2 import TemplateError

from smvl.infer.generate import Generation, inputs_for
from smvl.serve.errors import APIError
from smvl.serve.requests import ChatRequest
from smvl.serve.settings import Settings


class Worker:
    """Runs one generation at a time; `queue_depth` requests may hold a slot (generating or waiting)."""

    def __init__(self, model, processor, settings: Settings):
        self.model, self.processor, self.settings = model, processor, settings
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smvl-generate")
        self.lock = threading.Lock()
        self.busy = 0
        self.active: set[threading.Event] = set()

    def try_acquire(self) -> bool:
        with self.lock:
            if self.busy >= self.settings.queue_depth:
                return False
            self.busy += 1
            return True

    def release(self) -> None:
        with self.lock:
            self.busy -= 1

    def _prepare(self, req: ChatRequest, cancel: threading.Event) -> Generation:
        try:
            inputs = inputs_for(self.model, self.processor, [req.messages], [req.images], req.thinking)
        except TemplateError as exc:
            # A template's own raise_exception() speaks to the client; jinja's subclasses name internals.
            said = f": {exc}" if type(exc) is TemplateError else ""
            raise APIError(400, f"the chat template refused these messages{said}", "messages") from exc
        except (ValueError, TypeError, IndexError) as exc:  # the processor refused this input
            raise APIError(400, "cannot build a prompt from these messages", "messages") from exc
        prompt_tokens = int(inputs["input_ids"].shape[1])
        if prompt_tokens > self.settings.max_prompt_tokens:
            raise APIError(400, f"the prompt is {prompt_tokens} tokens, over the {self.settings.max_prompt_tokens} "
                                "limit", "messages", "context_length_exceeded")
        return Generation(self.model, self.processor, inputs, cancel, **req.options())

    def _complete(self, req: ChatRequest, cancel: threading.Event) -> tuple[Generation, str]:
        generation = self._prepare(req, cancel)
        try:
            return generation, generation.text()
        except Exception as exc:  # a 500 in OpenAI's shape rather than a traceback to the client
            raise APIError(500, f"generation failed: {type(exc).__name__}", code="generation_failed") from exc

    async def complete(self, req: ChatRequest, cancel: threading.Event) -> tuple[Generation, str]:
        """The whole answer, or what there was when `cancel` was set; the caller's slot is its own to release."""
        self.active.add(cancel)
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, self._complete, req, cancel)
        finally:
            self.active.discard(cancel)

    async def start_stream(self, req: ChatRequest) -> tuple[Generation, asyncio.Queue]:
        """Prepares (prompt limits raise here, before any event is sent), then streams pieces into a queue.

        The queue gets str pieces, then an APIError if generation failed, then None. The slot is released
        when generation ends, whether or not the client is still reading.
        """
        loop = asyncio.get_running_loop()
        cancel = threading.Event()
        generation = await loop.run_in_executor(self.executor, self._prepare, req, cancel)
        pieces: asyncio.Queue = asyncio.Queue()
        self.active.add(cancel)

        def send(item) -> None:
            try:
                loop.call_soon_threadsafe(pieces.put_nowait, item)
            except RuntimeError:  # the event loop is gone: the server is shutting down
                pass

        def produce() -> None:
            try:
                for piece in generation:
                    send(piece)
            except Exception as exc:  # sent to the client as an error event
                send(APIError(500, f"generation failed: {type(exc).__name__}", code="generation_failed"))
            finally:
                self.active.discard(cancel)
                self.release()
                send(None)

        loop.run_in_executor(self.executor, produce)
        return generation, pieces

    def close(self) -> None:
        for cancel in list(self.active):
            cancel.set()
        self.executor.shutdown(wait=False, cancel_futures=True)
