"""`smvl data inspect`: what a source holds, how long its samples are, and what one looks like to the model."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace

from smvl.data.batches.collate import IGNORE, CollateOptions, Encoded, Encoder, collate
from smvl.data.batches.heap import keep_freed_memory
from smvl.data.batches.timing import StageTimer
from smvl.data.samples.lazy import decode
from smvl.data.samples.sample import BadSample, tool_calls
from smvl.data.samples.skips import SkipLog
from smvl.data.sources import open_source


def histogram(values: list[int], bins: int = 8, width: int = 40) -> list[str]:
    if not values:
        return ["  (no samples)"]
    lo, hi = min(values), max(values)
    step = max(1, -(-(hi - lo + 1) // bins))
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, (v - lo) // step)] += 1
    top = max(counts)
    return [f"  {lo + i * step:>6}-{lo + (i + 1) * step - 1:<6} {c:>6} {'#' * round(width * c / top)}"
            for i, c in enumerate(counts) if c]


def render(enc: Encoded, processor) -> str:
    """The sample as text: image blocks collapsed, loss-carrying tokens between 【 and 】."""
    tok, out, i, image = processor.tokenizer, [], 0, 0
    while i < len(enc.input_ids):
        kind = enc.kinds[i]
        j = i
        while j < len(enc.input_ids) and enc.kinds[j] == kind and (enc.labels[j] != IGNORE) == (enc.labels[i] != IGNORE):
            j += 1
        if kind == "image":
            rows, cols = enc.tiles[image] if image < len(enc.tiles) else (0, 0)
            layout = f"{rows}x{cols} tiles + global" if rows else "1 tile"
            out.append(f"<image {layout}: {j - i:,} tokens>")
            image += 1
        else:
            text = tok.decode(enc.input_ids[i:j])
            out.append(f"【{text}】" if enc.labels[i] != IGNORE else text)
        i = j
    return "".join(out)


def tool_use(sample) -> Counter[str]:
    m = sample.messages
    return Counter({"tools": bool(sample.tools), "calls": tool_calls(m), "results": sum(x["role"] == "tool" for x in m),
                    "traces": sum(bool(x.get("reasoning_content")) for x in m)})


def tool_use_line(uses: Counter[str], samples: int) -> str:
    return (f"tool use and thinking: {uses['tools']} of {samples} samples offer tools; {uses['calls']} tool calls, "
            f"{uses['results']} tool results, {uses['traces']} thinking traces (data.drop_thinking trains a share "
            "of the traced samples without theirs)")


def source_shares(drawn: Counter, rows: int = 12) -> list[str]:
    """The realised share of each source among the samples drawn (a mixture's weights are what was asked for)."""
    total = sum(drawn.values())
    lines = ["samples drawn per source:", f"  {'source':<40} {'count':>7} {'share':>7}"]
    lines += [f"  {name:<40} {n:>7} {n / total:>7.1%}" for name, n in drawn.most_common(rows)]
    if len(drawn) > rows:
        lines.append(f"  ... {len(drawn) - rows} more sources, {sum(n for _, n in drawn.most_common()[rows:])} "
                     "samples")
    return lines if total else []


def inspect(spec: str, processor, max_length: int, limit: int, options: dict, seed: int = 0) -> str:
    skips = SkipLog(max_fraction=1.0)
    full = Encoder(processor, CollateOptions(max_length=10**9, retile=False))
    capped = Encoder(processor, replace(full.options, max_length=max_length, retile=True))
    image_tokens, text_tokens, totals = [], [], []
    truncated = retiled = dropped = 0
    drawn: Counter[str] = Counter()
    multi_image = images_left_out = 0
    uses: Counter[str] = Counter()  # tool use and thinking, as `tool_use_line` reports it
    first = None
    for n, sample in enumerate(open_source(spec, skips=skips, seed=seed, max_samples=limit, **options)):
        if n >= limit:
            break
        drawn[sample.source or "(unnamed)"] += 1
        try:
            enc = full(sample)
        except BadSample as exc:  # bad at any length (marker text, say): training would skip it the same way
            skips.skip(sample.id, exc.reason)
            continue
        uses.update(tool_use(sample))
        multi_image += enc.images_left_out > 0
        images_left_out += enc.images_left_out
        image_tokens.append(enc.image_tokens)
        text_tokens.append(len(enc.input_ids) - enc.image_tokens)
        totals.append(len(enc.input_ids))
        try:
            cut = capped(sample)
            truncated += cut.truncated
            retiled += cut.tiles != enc.tiles
            first = first or cut
        except BadSample:
            dropped += 1
    lines = [f"source: {spec}", f"samples read: {len(totals)}", skips.table(), *source_shares(drawn), "",
             "total tokens per sample:", *histogram(totals), "image tokens per sample:", *histogram(image_tokens),
             "text tokens per sample:", *histogram(text_tokens), "",
             f"at max_length {max_length}: {truncated} truncated (turns or answer cut), {retiled} re-tiled, "
             f"{dropped} dropped"]
    if +uses:  # counts above zero
        lines.append(tool_use_line(uses, len(totals)))
    if multi_image:
        lines.append(f"images: first (training's default) keeps one image: {multi_image} multi-image samples lose "
                     f"{images_left_out} images while all their questions train (data.images: all keeps up to "
                     f"data.max_images)")
    if first is not None:
        lines += ["", f"sample {first.id} (loss on 【...】):", render(first, processor)]
    return "\n".join(lines)


STAGES = ("read", "decode", "resize/tile", "tokenise", "collate")


class _Reader:
    """`(epoch, shard) -> samples` of one source, picklable for DataLoader workers: records read undecoded, then
    decoded here (JPEGs at reduced scale where the encoder allows), each step timed."""

    def __init__(self, spec: str, limit: int, seed: int, skips: SkipLog, draft, timer: StageTimer):
        self.spec, self.limit, self.seed, self.skips, self.draft, self.timer = spec, limit, seed, skips, draft, timer

    def __call__(self, epoch: int, shard: tuple[int, int]):
        samples = iter(open_source(self.spec, seed=self.seed, max_samples=self.limit, holdout=0, shard=shard,
                                   skips=self.skips, lazy=True))
        while True:
            with self.timer.stage("read"):
                sample = next(samples, None)
            if sample is None:
                return
            try:
                with self.timer.stage("decode"):
                    decode(sample, self.draft)
            except BadSample as exc:
                self.skips.reject(sample.id, exc.reason)
                continue
            yield sample


class _Collate:
    """`collate` timed, as BatchStream's `pack` (picklable)."""

    def __init__(self, pad_id: int, options: CollateOptions, timer: StageTimer):
        self.pad_id, self.options, self.timer = pad_id, options, timer

    def __call__(self, batch: list[Encoded]) -> dict:
        with self.timer.stage("collate"):
            return collate(batch, self.pad_id, self.options)


@dataclass
class BenchRun:
    samples: int
    seconds: float
    cpu_seconds: float  # CPU time of this process and its finished workers: on a shared machine, what the work took
    workers: int
    skipped: int
    stages: dict[str, float]  # seconds per stage; empty with workers (their clocks stay in their processes)

    @property
    def per_s(self) -> float:
        return self.samples / self.seconds

    @property
    def per_worker(self) -> float:
        return self.per_s / max(self.workers, 1)

    @property
    def per_cpu_s(self) -> float:
        """Samples per CPU-second: a worker's rate on a core of its own."""
        return self.samples / self.cpu_seconds


def _cpu() -> float:
    import resource

    own, done = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + done.ru_utime + done.ru_stime


def bench_run(spec: str, processor, limit: int, workers: int, fast: bool = True, batch_size: int = 8,
              seed: int = 0) -> BenchRun:
    """Read, decode, tile, tokenise and collate `limit` samples through the DataLoader the trainer uses."""
    import torch
    from torch.utils.data import DataLoader

    from smvl.data.batches.stream import BatchStream, merge_worker_skips

    encoder = Encoder(processor, CollateOptions(fast_images=fast))
    timer = encoder.timer
    skips = SkipLog(max_fraction=1.0)
    reader = _Reader(spec, limit, seed, skips, encoder.decode_size, timer)
    stream = BatchStream(reader, encoder, batch_size, encoder.options, epochs=1, skips=skips,
                         pack=_Collate(encoder.tok.pad_token_id, encoder.options, timer))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # in-process as in a DataLoader worker (which runs torch on one thread) ...
    keep_freed_memory()  # ... and keeps its freed buffers (BatchStream does this in workers)
    try:
        start, cpu = time.perf_counter(), _cpu()
        loader = DataLoader(stream, batch_size=None, num_workers=workers)
        count = sum(merge_worker_skips(b, skips)["input_ids"].shape[0] for b in loader)
        del loader  # its workers exit and are reaped, so their CPU time is counted
        seconds, cpu = time.perf_counter() - start, _cpu() - cpu
    finally:
        torch.set_num_threads(threads)
    return BenchRun(count, seconds, cpu, workers, skips.skipped, dict(timer.seconds) if workers == 0 else {})


def stage_lines(run: BenchRun) -> list[str]:
    timer = StageTimer()
    timer.seconds.update(run.stages)
    return timer.table(run.samples, STAGES)


def bench(spec: str, processor, limit: int, workers: int, fast: bool = True, batch_size: int = 8,
          seed: int = 0) -> str:
    """Samples/s of reading, decoding, tiling and collating; per stage in-process, per worker with workers."""
    run = bench_run(spec, processor, limit, workers, fast, batch_size, seed)
    path = "fast" if fast else "stock"
    cpu = f"{run.per_cpu_s:.1f} samples per CPU-second"
    if workers == 0:
        return "\n".join([f"{run.samples} samples in {run.seconds:.2f} s in-process ({path} image path): "
                          f"{run.per_s:.1f} samples/s, {cpu} ({run.skipped} skipped); where the time goes:",
                          *stage_lines(run)])
    return (f"{run.samples} samples in {run.seconds:.2f} s with {workers} worker(s) ({path} image path): "
            f"{run.per_s:.1f} samples/s, {run.per_worker:.1f} per worker, {cpu} ({run.skipped} skipped)")
