"""The model's one generation thread, fed micro-batches; a bounded number of queue slots; cancellation.

A request takes a slot, is parsed and its prompt built (off the event loop, one prompt at a time: the fast
tokenizer is not safe to call from two threads), then waits in `pending`. The generation thread takes the oldest
waiting request and every other one with the same sampling settings, up to `max_batch`, and generates them
together (smvl.infer.rows). Requests that arrive meanwhile wait for the next batch: micro-batching, not
continuous batching. Before starting a batch that is not full, the thread waits while requests are still being
parsed, or until none has arrived for `batch_wait_ms` (bounded by BATCH_WAIT_CAP of those), so that clients
answered together are generated together again instead of one, then the rest.

Greedy rows all share one setting; sampled rows share a batch only with the same temperature, top_p and top_k.
Seeds, stop strings, grammars and logprobs are per row (smvl.infer.rows), so they never split a batch.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from jinja2 import TemplateError

from smvl.errors import UserError
from smvl.infer.generate import end_token_ids, inputs_for
from smvl.infer.rows import Row, generate_rows
from smvl.serve.errors import APIError
from smvl.serve.requests import ChatRequest
from smvl.serve.settings import Settings

BATCH_WAIT_CAP = 10  # x batch_wait_ms: the longest a batch waits for requests still being parsed


@dataclass(eq=False)
class _Job:
    row: Row
    options: dict  # sampling settings: a batch takes only rows with the same ones
    # To the request's queue on the event loop: (str piece, logprobs entries so far) pairs, then an APIError or
    # nothing, then None.
    send: Callable[[object], None]
    release: bool  # whether the slot is released when generation ends (streams; plain answers release their own)

    @property
    def key(self) -> tuple:
        return ("greedy",) if self.options["temperature"] <= 0 else tuple(sorted(self.options.items()))


class Worker:
    """Generates batches of requests on one thread; `queue_depth` requests may hold a slot (any stage)."""

    def __init__(self, model, processor, settings: Settings):
        self.model, self.processor, self.settings = model, processor, settings
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smvl-generate")
        self.state = threading.Condition()
        self.prompt_lock = threading.Lock()
        self.busy = 0
        self.arriving = 0  # slots whose request is not in `pending` yet (being parsed or prepared)
        self.last_arrival = 0.0
        self.pending: list[_Job] = []
        self.draining = False  # a _drain is submitted to the executor
        self.active: set[Row] = set()

    def try_acquire(self) -> bool:
        with self.state:
            if self.busy >= self.settings.queue_depth:
                return False
            self.busy += 1
            self.arriving += 1
            return True

    def release(self, arrived: bool = True) -> None:
        """Frees a slot; `arrived=False` for a request that never reached the worker (its body was refused)."""
        with self.state:
            self.busy -= 1
            if not arrived:
                self._arrived()

    def _arrived(self) -> None:
        self.arriving -= 1
        self.last_arrival = time.monotonic()
        self.state.notify_all()

    def _constraint(self, req: ChatRequest):
        """The request's grammar compiled (under the prompt lock: xgrammar reads the tokenizer), or None."""
        if req.grammar is None:
            return None
        from smvl.infer.grammar import Constraint, GrammarError, compile_spec

        vocab = self.model.get_output_embeddings().weight.shape[0]
        try:
            with self.prompt_lock:
                compiled = compile_spec(self.processor.tokenizer, vocab, req.grammar)
        except GrammarError as exc:
            param = "tools" if req.grammar.kind == "tools" else "response_format"
            raise APIError(400, f"cannot constrain decoding to this schema: {exc}", param) from exc
        return Constraint(compiled, end_token_ids(self.model, self.processor))

    def _inputs(self, req: ChatRequest):
        try:
            with self.prompt_lock:
                inputs = inputs_for(self.model, self.processor, [req.messages], [req.images], req.thinking,
                                    [req.videos] if req.videos else None, [req.tools])
        except TemplateError as exc:
            # A template's own raise_exception() speaks to the client; jinja's subclasses name internals.
            said = f": {exc}" if type(exc) is TemplateError else ""
            raise APIError(400, f"the chat template refused these messages{said}", "messages") from exc
        except UserError as exc:  # a video with images: the stock processor cannot lay that out
            raise APIError(400, str(exc), "messages") from exc
        except (ValueError, TypeError, IndexError) as exc:  # the processor refused this input
            raise APIError(400, "cannot build a prompt from these messages", "messages") from exc
        prompt_tokens = int(inputs["input_ids"].shape[1])
        if prompt_tokens > self.settings.max_prompt_tokens:
            raise APIError(400, f"the prompt is {prompt_tokens} tokens, over the {self.settings.max_prompt_tokens} "
                                "limit", "messages", "context_length_exceeded")
        return inputs

    async def _submit(self, req: ChatRequest, cancel: threading.Event, release: bool) -> tuple[Row, asyncio.Queue]:
        """Builds the prompt (limits raise here, before anything is sent) and queues the request."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()

        def send(item) -> None:
            try:
                loop.call_soon_threadsafe(pieces.put_nowait, item)
            except RuntimeError:  # the event loop is gone: the server is shutting down
                pass

        try:
            inputs = await asyncio.to_thread(self._inputs, req)
            constraint = await asyncio.to_thread(self._constraint, req)
        except BaseException:
            with self.state:
                self._arrived()
            raise
        row = Row(inputs, req.max_tokens, req.least_tokens, cancelled=cancel, sampling=req.row_sampling(),
                  stop=req.stop, constraint=constraint, top_logprobs=req.top_logprobs)
        # Each piece goes with how many logprobs entries its tokens complete, so a stream sends them together.
        row.sink = lambda piece: send((piece, len(row.logprobs)))
        with self.state:
            self.pending.append(_Job(row, req.sampling(), send, release))
            self.active.add(row)
            self._arrived()
            if not self.draining:
                self.draining = True
                self.executor.submit(self._drain)
        return row, pieces

    def _next_batch(self) -> list[_Job]:
        wait = self.settings.batch_wait_ms / 1000
        with self.state:
            deadline = time.monotonic() + BATCH_WAIT_CAP * wait
            while True:
                for job in [j for j in self.pending if j.row.cancelled.is_set()]:  # left while waiting
                    self.pending.remove(job)
                    self._end(job, "cancelled")
                if not self.pending:
                    self.draining = False
                    return []
                key = self.pending[0].key
                batch = [j for j in self.pending if j.key == key][:self.settings.max_batch]
                now = time.monotonic()
                settle = self.last_arrival + wait
                if len(batch) == self.settings.max_batch or now >= deadline or (not self.arriving and now >= settle):
                    break
                self.state.wait((deadline if self.arriving else min(deadline, settle)) - now)
            for job in batch:
                self.pending.remove(job)
            return batch

    def _end(self, job: _Job, reason: str | None = None, error: APIError | None = None) -> None:
        if reason and not job.row.done:
            job.row.finish_reason = reason
        if error is not None:
            job.send(error)
        self.active.discard(job.row)
        if job.release:
            self.release()
        job.send(None)

    def _drain(self) -> None:
        while batch := self._next_batch():
            for job, error in self._generate(batch):
                with self.state:
                    self._end(job, error=error)

    def _generate(self, batch: list[_Job]) -> list[tuple[_Job, APIError | None]]:
        """Each job with its error (None: answered). When a batch fails, its rows that have sent nothing yet are
        tried again one by one, so one request that breaks generation fails alone, not its batch mates."""
        try:
            generate_rows(self.model, self.processor, [j.row for j in batch])
            return [(job, None) for job in batch]
        except Exception as exc:  # sent to the client as an error
            error = APIError(500, f"generation failed: {type(exc).__name__}", code="generation_failed")
            if len(batch) == 1:
                return [(batch[0], error)]
        fresh = [j for j in batch if not j.row.token_ids and not j.row.done]
        return [(j, error) for j in batch if j not in fresh] + [out for j in fresh for out in self._generate([j])]

    async def complete(self, req: ChatRequest, cancel: threading.Event) -> tuple[Row, str]:
        """The whole answer, or what there was when `cancel` was set; the caller's slot is its own to release."""
        row, pieces = await self._submit(req, cancel, release=False)
        text = []
        while (piece := await pieces.get()) is not None:
            if isinstance(piece, APIError):
                raise piece
            text.append(piece[0])
        return row, "".join(text).strip()

    async def start_stream(self, req: ChatRequest) -> tuple[Row, asyncio.Queue]:
        """Prepares (prompt limits raise here, before any event is sent), then streams pieces into a queue.

        The queue gets (str piece, logprobs entries so far) pairs, then an APIError if generation failed, then None.
        The slot is released
        when generation ends, whether or not the client is still reading.
        """
        return await self._submit(req, threading.Event(), release=True)

    def close(self) -> None:
        with self.state:
            for row in list(self.active):
                row.cancelled.set()
        self.executor.shutdown(wait=False, cancel_futures=True)
