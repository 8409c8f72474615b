"""HuggingFaceM4 "the_cauldron": a local download (`<root>/<subset>/*.parquet`) or the hub dataset by name.

Rows are `images` (list of {bytes, path} or PIL images) and `texts` (list of {user, assistant, source}); every
turn becomes a message and the images go at the start of the first user turn. With `streaming=True` (the default)
rows are read lazily (pyarrow batches locally, `datasets` streaming from the hub), so the full 169 GB never has to
fit in memory; `streaming=False` goes through `datasets`' memory-mapped Arrow cache (converted once). Images are
decoded here, row by row, never by `datasets` (or later, after training's shuffle buffer, with `lazy`): a bad image
skips its row, not the subset, and rows of other splits and shards are never decoded. A subset that fails to load
is skipped and counted under its name, not fatal.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from smvl.data.lazy import ImageRef, decode
from smvl.data.mixing import parse_weights, proportional_interleave, weighted_interleave
from smvl.data.sample import BadSample, Sample
from smvl.data.skips import SkipLog, TooManySkipped
from smvl.data.split import Selector

HUB_ID = "HuggingFaceM4/the_cauldron"


def row_to_sample(row: dict, sid: str, subset: str, lazy: bool = False) -> Sample:
    texts = row.get("texts")
    if not isinstance(texts, list) or not texts:
        raise BadSample("no texts")
    images = row.get("images") or []
    messages = []
    for t, turn in enumerate(texts):
        if not isinstance(turn, dict):
            raise BadSample("malformed record", f"turn {t} is a {type(turn).__name__}")
        user, answer = turn.get("user"), turn.get("assistant")
        if not isinstance(user, str) or not isinstance(answer, str):
            raise BadSample("non-string content", f"turn {t}")
        if not answer.strip():
            raise BadSample("empty answer", f"turn {t}")
        parts = ([{"type": "image"}] * len(images) if t == 0 else []) + [{"type": "text", "text": user}]
        messages += [{"role": "user", "content": parts}, {"role": "assistant", "content": answer}]
    sample = Sample(messages, [ImageRef(im) for im in images], id=sid, source=subset).validate()
    return sample if lazy else decode(sample)


def local_subsets(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.parquet")))


def _undecoded(dataset) -> Iterator[dict]:
    """Rows of a `datasets` Dataset or IterableDataset with images left as {bytes, path} (see the docstring)."""
    from datasets import IterableDataset

    if not isinstance(dataset, IterableDataset):
        dataset = dataset.to_iterable_dataset()  # over the memory-mapped cache: no copy
    yield from dataset.decode(False)


def _local_rows(folder: Path, streaming: bool) -> Iterator[dict]:
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{folder} holds no .parquet files")
    if not streaming:
        from datasets import load_dataset

        yield from _undecoded(load_dataset("parquet", data_files=[str(f) for f in files], split="train"))
        return
    import pyarrow.parquet as pq

    for file in files:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=64):
            yield from batch.to_pylist()


def _local_size(folder: Path) -> int:
    """Rows of a subset from the parquet footers: no row is read."""
    import pyarrow.parquet as pq

    total = 0
    for file in sorted(folder.glob("*.parquet")):
        try:
            total += pq.ParquetFile(file).metadata.num_rows
        except Exception:  # noqa: BLE001 - a broken file is reported when its rows are read
            pass
    return total


def _hub_size(subset: str) -> int | None:
    """Rows of a hub subset from its dataset card's split sizes (metadata only), None when unknown."""
    try:
        from datasets import load_dataset_builder

        return load_dataset_builder(HUB_ID, subset).info.splits["train"].num_examples
    except Exception:  # noqa: BLE001 - no metadata: the caller falls back to equal shares
        return None


def _hub_rows(subset: str, streaming: bool) -> Iterator[dict]:
    from datasets import load_dataset

    yield from _undecoded(load_dataset(HUB_ID, subset, split="train", streaming=streaming))


def _subset_samples(subset: str, rows: Iterator[dict], select, skips: SkipLog, lazy: bool) -> Iterator[Sample]:
    try:
        for index, row in enumerate(rows):
            if select.exhausted(index):
                return
            if not select(index):
                continue
            sid = f"{subset}:{index}"
            try:
                sample = row_to_sample(row, sid, subset, lazy)
            except BadSample as exc:
                skips.skip(sid, exc.reason)
                continue
            skips.ok()
            yield sample
    except TooManySkipped:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow, datasets, the hub raise many types; one bad subset is not fatal
        skips.skip(f"{subset} ({type(exc).__name__}: {str(exc)[:160]})", "subset failed to load")


def cauldron_samples(root: str | Path | None, subsets: str = "all", split: str = "train", holdout: float = 64,
                     weights: str | None = None, seed: int = 0, max_samples: int | None = None,
                     streaming: bool = True, skips: SkipLog | None = None,
                     shard: tuple[int, int] = (0, 1), lazy: bool = False) -> Iterator[Sample]:
    """Samples of the chosen subsets, mixed by `weights`, or without weights in proportion to their sizes; `lazy`
    leaves images undecoded (`smvl.data.lazy`)."""
    skips = skips if skips is not None else SkipLog()
    if root is not None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"the_cauldron folder {root} does not exist")
        names = local_subsets(root) if subsets == "all" else [s.strip() for s in subsets.split(",") if s.strip()]
        if not names:
            raise FileNotFoundError(f"{root} holds no <subset>/*.parquet folders (the_cauldron layout)")
        missing = [n for n in names if not (root / n).is_dir()]
        if missing:
            raise FileNotFoundError(f"{root} has no subset folder(s) {', '.join(missing)}")
        rows = {n: _local_rows(root / n, streaming) for n in names}
        sizes = None if weights else {n: _local_size(root / n) for n in names}
    else:
        if subsets == "all":
            from datasets import get_dataset_config_names

            names = sorted(get_dataset_config_names(HUB_ID))
        else:
            names = [s.strip() for s in subsets.split(",") if s.strip()]
        rows = {n: _hub_rows(n, streaming) for n in names}
        sizes = None if weights else {n: _hub_size(n) for n in names}
    selectors = {n: Selector(n, split, holdout, seed, shard) for n in names}
    streams = {n: _subset_samples(n, rows[n], selectors[n], skips, lazy) for n in names}
    if weights:
        mixed = weighted_interleave(streams, parse_weights(weights, names), seed)
    else:
        # Subsets in proportion to their size, interleaved: read one after another, a capped run (max_samples)
        # would train on the alphabetically first subsets only.
        if all(v is not None for v in sizes.values()):
            counts = {n: selectors[n].expected(sizes[n]) for n in names}
        else:
            counts = dict.fromkeys(names, 1.0)  # sizes unknown: equal shares, still interleaved
        mixed = proportional_interleave(streams, counts, seed)
    for i, sample in enumerate(mixed):
        if max_samples is not None and i >= max_samples:
            return
        yield sample
