"""Mixing streams: subsets in proportion to their size or by weight, and text-only samples at a ratio (SmolVLM
kept ~14% text)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

from smvl.data.sample import Sample
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


def weighted_interleave(streams: dict[str, Iterator[Sample]], weights: dict[str, float], seed: int) -> Iterator[Sample]:
    """Draw the next sample from a subset chosen with probability proportional to its weight, until all run out."""
    rng = random.Random(seed)
    live = {n: iter(s) for n, s in streams.items() if weights.get(n, 0) > 0}
    while live:
        names = list(live)
        name = rng.choices(names, [weights[n] for n in names])[0]
        try:
            yield next(live[name])
        except StopIteration:
            del live[name]


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
