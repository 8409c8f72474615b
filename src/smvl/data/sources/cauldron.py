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

from smvl.data.samples.lazy import ImageRef, decode
from smvl.data.samples.sample import BadSample, Sample
from smvl.data.samples.skips import SkipLog, TooManySkipped
from smvl.data.sources.mixing import parse_weights, proportional_interleave, weighted_interleave
from smvl.data.sources.split import Selector

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


def _local_rows(folder: Path, streaming: bool, select: Selector, skips: SkipLog) -> Iterator[tuple[int, dict]]:
    """(index, row) of the rows `select` keeps. Only those rows become Python objects (a row's image bytes
    included): every rank and worker reads every batch but converts only its own share. A file that cannot be read
    is skipped with its rows counted, and the subset goes on with its next file."""
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{folder} holds no .parquet files")
    if not streaming:
        from datasets import load_dataset

        readable = [f for f in files if _footer(f, folder.name, select, skips, files) is not None]
        if not readable:
            return
        rows = _undecoded(load_dataset("parquet", data_files=[str(f) for f in readable], split="train"))
        for index, row in enumerate(rows):
            if select.exhausted(index):
                return
            if select(index):
                yield index, row
        return
    start = 0
    for file in files:
        parquet = _footer(file, folder.name, select, skips, files)
        if parquet is None:
            continue
        index, end = start, start + parquet.metadata.num_rows
        try:
            for batch in parquet.iter_batches(batch_size=64):
                if select.exhausted(index):
                    return
                keep = [i for i in range(batch.num_rows) if select(index + i)]
                if keep:
                    yield from zip((index + i for i in keep), batch.take(keep).to_pylist())
                index += batch.num_rows
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
            lost = sum(1 for i in range(index, end) if select(i))
            skips.skip_many(_file_id(folder.name, file, exc), UNREADABLE, lost)
        start = end


UNREADABLE = "unreadable parquet file"


def _file_id(subset: str, file: Path, exc: Exception) -> str:
    return f"{subset}/{file.name} ({type(exc).__name__}: {str(exc)[:120]})"


def _footer(file: Path, subset: str, select: Selector, skips: SkipLog, files: list[Path]):
    """The file's ParquetFile, or None when its footer cannot be read (a download cut short): its rows are then
    unknown, so they are taken to be as many as the subset's other files hold on average (a subset's files are
    shards of one size) and counted as skipped, this reader's share of them, so a few broken files still trip the
    skip guard."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(file)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        counts = []
        for other in files:
            try:
                counts.append(pq.ParquetFile(other).metadata.num_rows)
            except Exception:  # noqa: BLE001 - another broken file: no help with the estimate
                pass
        estimate = round(sum(counts) / len(counts)) if counts else 1
        skips.skip_many(_file_id(subset, file, exc), UNREADABLE, select.share(estimate))
        return None


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


def _hub_records(subset: str, streaming: bool, select: Selector) -> Iterator[tuple[int, dict]]:
    for index, row in enumerate(_hub_rows(subset, streaming)):
        if select.exhausted(index):
            return
        if select(index):
            yield index, row


def _subset_samples(subset: str, records: Iterator[tuple[int, dict]], skips: SkipLog, lazy: bool) -> Iterator[Sample]:
    try:
        for index, row in records:
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
    leaves images undecoded (`smvl.data.samples.lazy`)."""
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

        def records(n: str, select: Selector):
            return _local_rows(root / n, streaming, select, skips)

        sizes = None if weights else {n: _local_size(root / n) for n in names}
    else:
        if subsets == "all":
            from datasets import get_dataset_config_names

            names = sorted(get_dataset_config_names(HUB_ID))
        else:
            names = [s.strip() for s in subsets.split(",") if s.strip()]

        def records(n: str, select: Selector):
            return _hub_records(n, streaming, select)

        sizes = None if weights else {n: _hub_size(n) for n in names}

    def stream(n: str) -> Iterator[Sample]:  # one pass over a subset: a fresh Selector counts its shard from 0
        return _subset_samples(n, records(n, Selector(n, split, holdout, seed, shard)), skips, lazy)

    if weights:
        passes = {n: (lambda _pass, n=n: stream(n)) for n in names}
        mixed = weighted_interleave(passes, parse_weights(weights, names), seed, repeat=split == "train")
    else:
        selectors = {n: Selector(n, split, holdout, seed, shard) for n in names}
        streams = {n: stream(n) for n in names}
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
