"""`smvl data inspect`: what a source holds, how long its samples are, and what one looks like to the model."""

from __future__ import annotations

import time
from dataclasses import replace

from smvl.data.collate import IGNORE, CollateOptions, Encoded, Encoder
from smvl.data.sample import BadSample
from smvl.data.skips import SkipLog
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


def inspect(spec: str, processor, max_length: int, limit: int, options: dict, seed: int = 0) -> str:
    skips = SkipLog(max_fraction=1.0)
    full = Encoder(processor, CollateOptions(max_length=10**9, retile=False))
    capped = Encoder(processor, replace(full.options, max_length=max_length, retile=True))
    image_tokens, text_tokens, totals = [], [], []
    truncated = retiled = dropped = 0
    first = None
    for n, sample in enumerate(open_source(spec, skips=skips, seed=seed, max_samples=limit, **options)):
        if n >= limit:
            break
        try:
            enc = full(sample)
        except BadSample as exc:  # bad at any length (marker text, say): training would skip it the same way
            skips.skip(sample.id, exc.reason)
            continue
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
    lines = [f"source: {spec}", f"samples read: {len(totals)}", skips.table(), "",
             "total tokens per sample:", *histogram(totals), "image tokens per sample:", *histogram(image_tokens),
             "text tokens per sample:", *histogram(text_tokens), "",
             f"at max_length {max_length}: {truncated} truncated (turns or answer cut), {retiled} re-tiled, "
             f"{dropped} dropped"]
    if first is not None:
        lines += ["", f"sample {first.id} (loss on 【...】):", render(first, processor)]
    return "\n".join(lines)


class _Reader:
    """`(epoch, shard) -> samples` of one source, picklable for DataLoader workers."""

    def __init__(self, spec: str, limit: int, seed: int, skips: SkipLog):
        self.spec, self.limit, self.seed, self.skips = spec, limit, seed, skips

    def __call__(self, epoch: int, shard: tuple[int, int]):
        return open_source(self.spec, seed=self.seed, max_samples=self.limit, holdout=0, shard=shard,
                           skips=self.skips)


def bench(spec: str, processor, limit: int, workers: int, batch_size: int = 8, seed: int = 0) -> str:
    """Samples/s of reading, decoding, tiling and collating, through the same DataLoader the trainer uses."""
    from torch.utils.data import DataLoader

    from smvl.data.stream import BatchStream, merge_worker_skips

    encoder = Encoder(processor, CollateOptions())
    skips = SkipLog(max_fraction=1.0)
    # Reading and decoding happen inside the timed loop (and inside the workers), as in training.
    stream = BatchStream(_Reader(spec, limit, seed, skips), encoder, batch_size, encoder.options, epochs=1,
                         skips=skips)
    start = time.perf_counter()
    count = sum(merge_worker_skips(b, skips)["input_ids"].shape[0]
                for b in DataLoader(stream, batch_size=None, num_workers=workers))
    seconds = time.perf_counter() - start
    return (f"{count} samples in {seconds:.2f} s with {workers} worker(s): {count / seconds:.1f} samples/s "
            f"({skips.skipped} skipped)")
