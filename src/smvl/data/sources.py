"""One entry point from a source name to canonical samples: `synthetic`, JSONL/LLaVA files, the_cauldron."""

from __future__ import annotations

from collections.abc import Iterator

from smvl.data.sample import BadSample, Sample
from smvl.data.skips import SkipLog


def _validated(samples, skips: SkipLog) -> Iterator[Sample]:
    for sample in samples:
        try:
            sample.validate()
        except BadSample as exc:
            skips.skip(sample.id, exc.reason)
            continue
        skips.ok()
        yield sample


def open_source(spec: str, split: str = "train", skips: SkipLog | None = None, seed: int = 0,
                max_samples: int | None = None, **options) -> Iterator[Sample]:
    """Samples of `spec`; bad ones are skipped and counted in `skips`."""
    skips = skips if skips is not None else SkipLog()
    if spec == "synthetic":
        from smvl.data.synthetic import synthetic_samples

        return _validated(synthetic_samples(split=split, n=max_samples or 1000, seed=seed), skips)
    raise ValueError(f"unknown data source {spec!r}")
