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
from smvl.data.split import Selector


def _validated(samples, skips: SkipLog) -> Iterator[Sample]:
    for sample in samples:
        try:
            sample.validate()
        except BadSample as exc:
            skips.skip(sample.id, exc.reason)
            continue
        skips.ok()
        yield sample


def _capped(samples: Iterator[Sample], cap: int | None) -> Iterator[Sample]:
    for i, s in enumerate(samples):
        if cap is not None and i >= cap:
            return
        yield s


def open_source(spec: str, split: str = "train", skips: SkipLog | None = None, seed: int = 0,
                max_samples: int | None = None, subsets: str = "all", weights: str | None = None,
                holdout: float = 64, streaming: bool = True, shard: tuple[int, int] = (0, 1)) -> Iterator[Sample]:
    """Samples of `spec` for `split` ("train" or "test"); bad ones are skipped and counted in `skips`.

    `shard=(k, n)` yields every n-th record from the k-th, choosing before any image is decoded, so processes and
    DataLoader workers each decode only their own share; `max_samples` is then shared out between the shards.
    """
    skips = skips if skips is not None else SkipLog()
    cap = -(-max_samples // shard[1]) if max_samples is not None else None
    if spec == "synthetic":
        from smvl.data.synthetic import make_sample

        n = max_samples or 1000
        return _validated((make_sample(split, seed, i) for i in range(shard[0], n, shard[1])), skips)
    if spec.startswith("cauldron:") or spec == "HuggingFaceM4/the_cauldron":
        from smvl.data.cauldron import cauldron_samples

        names = spec.partition(":")[2] or subsets
        return cauldron_samples(None, names, split, holdout, weights, seed, cap, streaming, skips, shard)
    path = Path(spec)
    if path.is_dir():
        from smvl.data.cauldron import cauldron_samples

        return cauldron_samples(path, subsets, split, holdout, weights, seed, cap, streaming, skips, shard)
    if path.suffix in (".jsonl", ".json"):
        from smvl.data.jsonl import read_chat_file

        return _capped(read_chat_file(path, skips, Selector(path.name, split, holdout, seed, shard)), cap)
    if "/" in spec or path.suffix:
        raise FileNotFoundError(f"data source {spec} does not exist")
    raise ValueError(f"unknown data source {spec!r}: use synthetic, a .jsonl/.json file, a the_cauldron folder, "
                     "or cauldron:<subsets>")
