"""One chat request per text through the official `openai` client, with our own bounded retries.

The client's retries are off (`max_retries=0`) so that every 429, 5xx, timeout and dropped connection is seen
here: counted, retried after an exponential backoff with jitter (or the server's Retry-After), and given up on after
`retries` tries, when the text counts as a failed request (not cached: it is asked again on the next run). A
semaphore bounds the requests in flight.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import openai

from smvl.errors import UserError

TRANSIENT = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError)


@dataclass
class Usage:
    requests: int = 0
    retries: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # transient error kind -> count


class RequestFailed(Exception):
    """A text whose request kept failing; the run goes on without it."""


class CutOff(Exception):
    """The answer stopped at `max_tokens` (finish_reason "length"): a fragment, however Chinese it looks. At
    temperature 0 asking again gets the same fragment, so the caller rejects the text rather than retrying it."""


class Translator:
    def __init__(self, endpoint: str, model: str, prompt: str, api_key: str | None, concurrency: int = 8,
                 timeout: float = 120.0, retries: int = 6, backoff: float = 1.0, max_tokens: int | None = None):
        self.client = openai.AsyncOpenAI(base_url=endpoint, api_key=api_key or "none", max_retries=0,
                                         timeout=timeout)
        self.model, self.prompt, self.retries, self.backoff = model, prompt, retries, backoff
        self.max_tokens = max_tokens
        self.slots = asyncio.Semaphore(concurrency)
        self.usage = Usage()

    async def translate(self, text: str) -> str:
        """The endpoint's answer for `text` (unvalidated); RequestFailed, or CutOff for an answer cut short."""
        max_tokens = self.max_tokens or 64 + 2 * len(text)  # a translation is not longer than this
        for attempt in range(self.retries + 1):
            try:
                async with self.slots:
                    self.usage.requests += 1
                    reply = await self.client.chat.completions.create(
                        model=self.model, temperature=0,
                        max_tokens=max_tokens,
                        messages=[{"role": "system", "content": self.prompt}, {"role": "user", "content": text}])
            except TRANSIENT as exc:
                kind = type(exc).__name__
                self.usage.errors[kind] = self.usage.errors.get(kind, 0) + 1
                if attempt == self.retries:
                    break
                self.usage.retries += 1
                await asyncio.sleep(self._delay(attempt, exc))
                continue
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
                raise UserError(f"endpoint {self.client.base_url} refused the request ({exc.status_code}): "
                                f"{_message(exc)}") from None
            except openai.APIStatusError as exc:  # 400, 413, 422: this text, not the endpoint
                self.usage.failed += 1
                raise RequestFailed(f"{exc.status_code}: {_message(exc)}") from None
            if reply.usage is not None:
                self.usage.prompt_tokens += reply.usage.prompt_tokens or 0
                self.usage.completion_tokens += reply.usage.completion_tokens or 0
            choices = reply.choices or []
            if choices and choices[0].finish_reason == "length":
                raise CutOff(f"cut at max_tokens {max_tokens}")
            return (choices[0].message.content or "") if choices else ""
        self.usage.failed += 1
        raise RequestFailed(f"gave up after {self.retries + 1} tries")

    def _delay(self, attempt: int, exc: Exception) -> float:
        response = getattr(exc, "response", None)
        after = response.headers.get("retry-after") if response is not None else None
        try:
            wait = float(after) if after is not None else None
        except ValueError:
            wait = None
        if wait is None:
            wait = self.backoff * 2 ** attempt
        return min(wait, 60.0) * random.uniform(1.0, 1.25)

    async def close(self) -> None:
        await self.client.close()


def _message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        body = body.get("error", body)
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])[:200]
    return str(exc)[:200]
