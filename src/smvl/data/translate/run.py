"""The translation run: samples in, texts to the endpoint (cached, validated), Chinese samples out, and the report.

Samples are read in a thread and processed concurrently, at most `2 x concurrency` at once (requests in flight are
bounded separately by the translator's semaphore); a text asked for by several samples at once is asked once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from smvl.data.samples.sample import Sample
from smvl.data.samples.skips import SkipLog
from smvl.data.translate.cache import Cache, cache_key
from smvl.data.translate.client import CutOff, RequestFailed, Translator, Usage
from smvl.data.translate.output import Output
from smvl.data.translate.policy import Policy
from smvl.data.translate.source import CauldronFolder
from smvl.data.translate.texts import fixed_translation, texts_to_translate, with_translations
from smvl.data.translate.validate import rejection
from smvl.errors import UserError

PROMPT = Path(__file__).parents[1] / "prompts" / "translate.md"


@dataclass
class TranslateOptions:
    source: str
    out: Path
    endpoint: str
    model: str
    api_key_env: str | None = None
    concurrency: int = 8
    limit: int | None = None
    subsets: str = "all"
    prompt: Path | None = None
    policy: Path | None = None
    cache: Path | None = None  # default: <out>.cache.sqlite
    retry_rejected: bool = False
    timeout: float = 120.0
    retries: int = 6
    backoff: float = 1.0
    progress: bool = True


@dataclass
class Report:
    read: int = 0
    written: int = 0
    kept: int = 0  # written untranslated by the policy (counted in `written`)
    already_written: int = 0  # by an earlier run: skipped
    rejected: Counter = field(default_factory=Counter)  # reason -> samples
    bad_rows: Counter = field(default_factory=Counter)  # rows the reader could not use
    unreadable_files: dict = field(default_factory=dict)  # parquet file -> why: its rows are left out
    texts_asked: int = 0  # distinct texts sent to the endpoint in this run
    cache_hits: int = 0
    fixed: int = 0  # texts answered without asking (yes/no, numbers, letters)
    usage: Usage = field(default_factory=Usage)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["rejected"], data["bad_rows"] = dict(self.rejected), dict(self.bad_rows)
        data["rejected_total"] = sum(self.rejected.values())
        return data

    def text(self) -> str:
        u = self.usage
        lines = [f"samples: {self.read:,} read, {self.written:,} written ({self.written - self.kept:,} translated, "
                 f"{self.kept:,} kept as they are by the policy), {sum(self.rejected.values()):,} rejected, "
                 f"{self.already_written:,} already written"]
        for reason, n in self.rejected.most_common():
            lines.append(f"  rejected, {reason}: {n:,}")
        for reason, n in self.bad_rows.most_common():
            lines.append(f"  unreadable row, {reason}: {n:,}")
        for path, why in self.unreadable_files.items():
            lines.append(f"  unreadable parquet file, its rows left out: {path} ({why})")
        lines.append(f"texts: {self.texts_asked:,} asked, {self.cache_hits:,} from the cache, {self.fixed:,} "
                     "answered without asking (yes/no, numbers, letters)")
        errors = ", ".join(f"{k} {v:,}" for k, v in sorted(u.errors.items()))
        lines.append(f"requests: {u.requests:,} ({u.retries:,} retries, {u.failed:,} texts given up on"
                     + (f"; {errors}" if errors else "") + ")")
        lines.append(f"tokens: {u.prompt_tokens:,} prompt + {u.completion_tokens:,} completion")
        return "\n".join(lines)


class Run:
    def __init__(self, options: TranslateOptions, folder: CauldronFolder, prompt: str, policy: Policy):
        self.options, self.folder, self.prompt, self.policy = options, folder, prompt, policy
        self.report = Report(unreadable_files={str(f): why for f, why in folder.unreadable.items()})
        out = Path(options.out)
        self.cache = Cache(options.cache or out.with_name(out.name + ".cache.sqlite"), options.retry_rejected)
        self.output = Output(out)
        api_key = os.environ.get(options.api_key_env) if options.api_key_env else None
        self.translator = Translator(options.endpoint, options.model, prompt, api_key, options.concurrency,
                                     options.timeout, options.retries, options.backoff)
        self.report.usage = self.translator.usage
        self.asking: dict[str, asyncio.Task] = {}

    async def text(self, text: str) -> tuple[str | None, str | None]:
        """(translation, None) or (None, rejection reason) for one text."""
        fixed = fixed_translation(text)
        if fixed is not None:
            self.report.fixed += 1
            return fixed, None
        key = cache_key(self.options.model, self.prompt, text)
        entry = self.cache.get(key)
        if entry is not None:
            self.report.cache_hits += 1
            return entry.get("text"), entry.get("rejected")
        if key not in self.asking:
            self.asking[key] = asyncio.ensure_future(self._ask(key, text))
        return await asyncio.shield(self.asking[key])

    async def _ask(self, key: str, text: str) -> tuple[str | None, str | None]:
        self.report.texts_asked += 1
        try:
            answer = (await self.translator.translate(text)).strip()
            reason = rejection(text, answer)
        except RequestFailed:
            return None, "request failed"  # not cached: asked again next run
        except CutOff:
            answer, reason = None, "cut at max_tokens"  # cached like any rejection: the same request cuts the same
        finally:
            self.asking.pop(key, None)
        self.cache.put(key, None if reason else answer, reason)
        return (None, reason) if reason else (answer, None)

    async def sample(self, sample: Sample) -> None:
        mode = self.policy(sample.source)
        units = texts_to_translate(sample, mode)
        results = await asyncio.gather(*(self.text(t) for _, t in units))
        reasons = [reason for _, reason in results if reason]
        if reasons:
            self.report.rejected[reasons[0]] += 1
            return
        subset, index = sample.id.rsplit(":", 1)
        self.output.write({
            "id": sample.id, "subset": subset,
            "images": self.folder.image_refs(subset, int(index), len(sample.images), self.output.path.parent),
            "messages": with_translations(sample, {i: tr for (i, _), (tr, _) in zip(units, results)})})
        self.report.written += 1
        self.report.kept += mode == "keep"

    async def run(self) -> Report:
        from tqdm import tqdm

        skips = SkipLog()
        total = self.folder.size()
        total = min(total, self.options.limit) if self.options.limit is not None else total
        bar = tqdm(total=total, unit="sample", file=sys.stderr, disable=not self.options.progress,
                   dynamic_ncols=True)
        window = 2 * self.options.concurrency
        samples = self.folder.samples(self.options.limit, skips)
        pending: set[asyncio.Task] = set()

        def finished(done) -> None:
            errors = [task.exception() for task in done]  # every one retrieved, or asyncio logs them at exit
            if any(errors):
                raise next(e for e in errors if e)  # a fatal error (the endpoint refused us) ends the run here
            u = self.report.usage
            bar.update(len(done))
            bar.set_postfix(tokens=f"{u.prompt_tokens + u.completion_tokens:,}", rejected=sum(
                self.report.rejected.values()), refresh=False)

        try:
            while True:
                sample = await asyncio.to_thread(next, samples, None)
                if sample is None:
                    break
                self.report.read += 1
                if sample.id in self.output.done:
                    self.report.already_written += 1
                    bar.update(1)
                    continue
                pending.add(asyncio.ensure_future(self.sample(sample)))
                if len(pending) >= window:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    finished(done)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                finished(done)
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            bar.close()
            self.cache.close()
            self.output.close()
            await self.translator.close()
        self.report.bad_rows.update(skips.by_reason)
        self.report.read += skips.skipped
        return self.report


def check_endpoint(endpoint: str, api_key_env: str | None) -> None:
    """One line now, not a run of retries later, when the endpoint cannot be reached or the key is missing."""
    import httpx

    if api_key_env and not os.environ.get(api_key_env):
        raise UserError(f"--api-key-env {api_key_env}: that environment variable is not set")
    try:
        httpx.get(endpoint.rstrip("/") + "/models", timeout=10)
    except httpx.HTTPError as exc:
        raise UserError(f"endpoint {endpoint} is unreachable ({type(exc).__name__}: {exc})") from None


def translate(options: TranslateOptions) -> Report:
    prompt_path = Path(options.prompt) if options.prompt else PROMPT
    if not prompt_path.is_file():
        raise UserError(f"prompt file {prompt_path} does not exist")
    prompt = prompt_path.read_text(encoding="utf-8").strip()
    policy = Policy.load(options.policy)
    folder = CauldronFolder(options.source, options.subsets)
    if options.concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    check_endpoint(options.endpoint, options.api_key_env)
    return asyncio.run(Run(options, folder, prompt, policy).run())


def print_report(report: Report, as_json: bool) -> None:
    print(json.dumps(report.as_dict(), ensure_ascii=False, indent=1) if as_json else report.text())
