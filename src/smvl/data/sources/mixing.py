"""Mixing streams: subsets in proportion to their size or by weight, and text-only samples at a ratio (SmolVLM
kept ~14% text)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator

from smvl.data.samples.sample import Sample
from smvl.errors import UserError


def parse_weights(spec: str | None, names: list[str]) -> dict[str, float]:
    """'cocoqa:1,ai2d:0.5' -> {cocoqa: 1, ai2d: 0.5}; subsets not named get weight 0 (left out)."""
    if not spec:
        return dict.fromkeys(names, 1.0)
    weights = {}
    for item in spec.split(","):
        name, _, value = item.partition(":")
        try:
            weights[name.strip()] = float(value) if value else 1.0
        except ValueError:
            raise UserError(f"mixture weight {item!r} is not name:number (e.g. cocoqa:1,ai2d:0.5)") from None
    unknown = set(weights) - set(names)
    if unknown:
        raise UserError(f"mixture weights name unknown subset(s): {', '.join(sorted(unknown))}")
    if not any(w > 0 for w in weights.values()):
        raise UserError("mixture weights are all zero")
    return {n: weights.get(n, 0.0) for n in names}


Streams = dict[str, Callable[[int], Iterable[Sample]]]  # name -> (pass number -> that pass over the source)


def weighted_interleave(streams: Streams, weights: dict[str, float], seed: int, repeat: bool = True) -> Iterator[Sample]:
    """Draw the next sample from a source chosen with probability proportional to its weight, so the weights set
    each source's share of what is drawn (`small*10 + big*1`: ten small samples for every big one). With `repeat`
    (training) a source that runs out starts another pass, and the stream stops once every source has been read
    through at least once: `datasets.interleave_datasets`' "all_exhausted" rule. Without it (held-out data: each
    record once) a source that runs out drops out. A pass that yields nothing drops its source either way."""
    rng = random.Random(seed)
    names = [n for n in streams if weights.get(n, 0) > 0]
    live = {n: iter(streams[n](0)) for n in names}
    passes, unfinished = dict.fromkeys(names, 0), set(names)
    while live and (unfinished or not repeat):
        pick = list(live)
        name = rng.choices(pick, [weights[n] for n in pick])[0]
        sample = next(live[name], None)
        if sample is None and repeat:
            # Read through: start the next pass at once, so the pick is not lost (that would shrink the share of a
            # source with few records).
            unfinished.discard(name)
            if not unfinished:
                return
            passes[name] += 1
            live[name] = iter(streams[name](passes[name]))
            sample = next(live[name], None)
        if sample is None:  # empty (nothing in it, or nothing left on a pass): it drops out
            unfinished.discard(name)
            del live[name]
            continue
        yield sample


def proportional_interleave(streams: dict[str, Iterator[Sample]], sizes: dict[str, float],
                            seed: int) -> Iterator[Sample]:
    """Interleave streams in proportion to their (expected) sizes, drawing without replacement: the next subset is
    chosen with probability proportional to its remaining count, so every prefix of the output holds the subsets in
    about their share of the whole, and they all run out together. A stream longer than its count carries on at
    the end; one shorter simply drops out."""
    rng = random.Random(seed)
    live = {n: iter(s) for n, s in streams.items()}
    left = {n: max(0.0, float(sizes.get(n, 0))) for n in live}
    while live:
        names = list(live)
        counts = [left[n] for n in names]
        name = rng.choices(names, counts)[0] if any(counts) else rng.choice(names)
        try:
            sample = next(live[name])
        except StopIteration:
            del live[name]
            continue
        left[name] = max(0.0, left[name] - 1)
        yield sample


def mix_text_only(image_samples: Iterable[Sample], text_samples: Iterable[Sample], ratio: float,
                  seed: int) -> Iterator[Sample]:
    """About `ratio` of the output is text-only; stops when the image stream ends."""
    if not 0 <= ratio < 1:
        raise UserError(f"text-only ratio {ratio} must be in [0, 1)")
    rng, text = random.Random(seed), iter(text_samples)
    for sample in image_samples:
        while rng.random() < ratio:
            try:
                yield next(text)
            except StopIteration:
                break
        yield sample
