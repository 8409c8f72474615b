"""One entry point from a source name to canonical samples.

| spec | source |
| --- | --- |
| `synthetic` | the built-in Chinese visual-QA set (`smvl.data.synthetic`) |
| `path/file.jsonl`, `path/file.json` | smvl JSONL or LLaVA/ShareGPT records (`smvl.data.jsonl`) |
| `path/folder` | a local the_cauldron download, `<folder>/<subset>/*.parquet` |
| `cauldron:cocoqa,ai2d` or `HuggingFaceM4/the_cauldron` | the hub dataset through `datasets` |
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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


def _held_out_split(samples: Iterator[Sample], split: str, holdout: float) -> Iterator[Sample]:
    """Files: the first `holdout` records (a count) or every 1/holdout-th (a fraction) form the test split."""
    if holdout >= 1:
        for i, s in enumerate(samples):
            if (i < holdout) == (split == "test"):
                yield s
            elif split == "test":
                return
        return
    period = max(1, round(1 / holdout)) if holdout > 0 else None
    for i, s in enumerate(samples):
        if (period is not None and i % period == 0) == (split == "test"):
            yield s


def _capped(samples: Iterator[Sample], cap: int | None) -> Iterator[Sample]:
    for i, s in enumerate(samples):
        if cap is not None and i >= cap:
            return
        yield s


def open_source(spec: str, split: str = "train", skips: SkipLog | None = None, seed: int = 0,
                max_samples: int | None = None, subsets: str = "all", weights: str | None = None,
                holdout: float = 64, streaming: bool = True) -> Iterator[Sample]:
    """Samples of `spec` for `split` ("train" or "test"); bad ones are skipped and counted in `skips`."""
    skips = skips if skips is not None else SkipLog()
    if spec == "synthetic":
        from smvl.data.synthetic import synthetic_samples

        return _validated(synthetic_samples(split=split, n=max_samples or 1000, seed=seed), skips)
    if spec.startswith("cauldron:") or spec == "HuggingFaceM4/the_cauldron":
        from smvl.data.cauldron import cauldron_samples

        names = spec.partition(":")[2] or subsets
        return cauldron_samples(None, names, split, holdout, weights, seed, max_samples, streaming, skips)
    path = Path(spec)
    if path.is_dir():
        from smvl.data.cauldron import cauldron_samples

        return cauldron_samples(path, subsets, split, holdout, weights, seed, max_samples, streaming, skips)
    if path.suffix in (".jsonl", ".json"):
        from smvl.data.jsonl import read_chat_file

        return _capped(_held_out_split(read_chat_file(path, skips), split, holdout), max_samples)
    if "/" in spec or path.suffix:
        raise FileNotFoundError(f"data source {spec} does not exist")
    raise ValueError(f"unknown data source {spec!r}: use synthetic, a .jsonl/.json file, a the_cauldron folder, "
                     "or cauldron:<subsets>")
