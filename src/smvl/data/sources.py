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
from smvl.errors import UserError
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
                holdout: float = 64, streaming: bool = True, shard: tuple[int, int] = (0, 1),
                lazy: bool = False) -> Iterator[Sample]:
    """Samples of `spec` for `split` ("train" or "test"); bad ones are skipped and counted in `skips`. With `lazy`,
    images may stay undecoded ImageRefs: pass the samples through `smvl.data.lazy.decoded` before use.

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
        return cauldron_samples(None, names, split, holdout, weights, seed, cap, streaming, skips, shard, lazy)
    path = Path(spec)
    if path.is_dir():
        from smvl.data.cauldron import cauldron_samples

        return cauldron_samples(path, subsets, split, holdout, weights, seed, cap, streaming, skips, shard, lazy)
    if path.suffix in (".jsonl", ".json"):
        from smvl.data.jsonl import read_chat_file

        return _capped(read_chat_file(path, skips, Selector(path.name, split, holdout, seed, shard), lazy), cap)
    raise _unknown(spec)


def _unknown(spec: str) -> Exception:
    path = Path(spec)
    if "/" in spec or path.suffix:
        return FileNotFoundError(f"data source {spec} does not exist")
    return UserError(f"unknown data source {spec!r}: use synthetic, a .jsonl/.json file, a the_cauldron folder, "
                     "or cauldron:<subsets>")


def check_source(spec: str, subsets: str = "all", weights: str | None = None) -> None:
    """Fail now, in one sentence naming the source, on what would only fail once reading starts: after the splice,
    a download, or hours into a run."""
    from smvl.data.mixing import parse_weights

    if spec == "synthetic":
        return
    if spec.startswith("cauldron:") or spec == "HuggingFaceM4/the_cauldron":
        names = spec.partition(":")[2] or subsets
        if weights and names != "all":
            parse_weights(weights, [n.strip() for n in names.split(",") if n.strip()])
        return
    path = Path(spec)
    if path.is_dir():
        from smvl.data.cauldron import local_subsets

        found = local_subsets(path)
        if not found:
            raise UserError(f"{spec} holds no <subset>/*.parquet folders (the_cauldron layout)")
        chosen = found if subsets == "all" else [n.strip() for n in subsets.split(",") if n.strip()]
        missing = sorted(set(chosen) - set(found))
        if missing:
            raise UserError(f"{spec} has no subset folder(s) {', '.join(missing)} (it has {', '.join(found)})")
        if weights:
            parse_weights(weights, chosen)
        return
    if path.suffix in (".jsonl", ".json") and path.is_file():
        return
    raise _unknown(spec)
