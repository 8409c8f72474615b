"""Records in storage -> samples: `open_source` is the one entry point from a source name to canonical samples,
split, sharded and mixed; the modules beside it read one kind of source each. Reads `samples` only, never `batches`.

| spec | source |
| --- | --- |
| `synthetic` | the built-in Chinese visual-QA set (`smvl.data.sources.synthetic`) |
| `synthetic-video` | the built-in Chinese video-QA set (`smvl.data.sources.synthetic_video`) |
| `synthetic-tools`, `synthetic-thinking` | built-in Chinese tool-calling and thinking sets (`.synthetic_tools`) |
| `path/file.jsonl`, `path/file.json` | smvl JSONL or LLaVA/ShareGPT records (`smvl.data.sources.jsonl`) |
| `path/folder` | a local the_cauldron download, `<folder>/<subset>/*.parquet` |
| `cauldron:cocoqa,ai2d` or `HuggingFaceM4/the_cauldron` | the hub dataset through `datasets` |
| `path/folder` with `captions.jsonl/.csv/.tsv`, `path/captions.csv` | image-caption pairs (`smvl.data.sources.captions`) |
| `shards/{000000..000099}.tar`, `shards/*.tar`, a folder of them | WebDataset shards (`smvl.data.sources.webdataset`) |
| `modelscope:AI-ModelScope/the_cauldron` | a ModelScope dataset repo, downloaded, then read as the local folder it is |
| `a.jsonl*2 + data/the_cauldron*1` | several sources mixed by weight (`*w`, default 1), each sharded and split alike |

With SMVL_HUB=modelscope the the_cauldron hub names (`cauldron:...`, `HuggingFaceM4/the_cauldron`) go to its
ModelScope copy, AI-ModelScope/the_cauldron, downloading only the chosen subsets' folders.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from smvl.data.samples.sample import BadSample, Sample
from smvl.data.samples.skips import SkipLog
from smvl.data.sources.split import Selector
from smvl.errors import UserError

BUILT_IN = ("synthetic", "synthetic-video", "synthetic-tools", "synthetic-thinking")  # made in code, no files

MODELSCOPE_CAULDRON = "AI-ModelScope/the_cauldron"
MIX_SEPARATOR = " + "
_WEIGHT = re.compile(r"^(.*?)\*(\d+(?:\.\d+)?)$")


def mixture_parts(spec: str) -> list[tuple[str, float]]:
    """'a.jsonl*2 + data/the_cauldron' -> [(a.jsonl, 2.0), (data/the_cauldron, 1.0)]."""
    parts = []
    for item in spec.split(MIX_SEPARATOR):
        item = item.strip()
        match = _WEIGHT.match(item)
        name, weight = (match.group(1).strip(), float(match.group(2))) if match else (item, 1.0)
        if not name:
            raise UserError(f"empty source in the mixture {spec!r}")
        parts.append((name, weight))
    if not any(w > 0 for _, w in parts):
        raise UserError(f"the mixture {spec!r} has only zero weights")
    return parts


def _hub_folder(spec: str, subsets: str) -> tuple[Path, str] | None:
    """(local folder, subsets) for a ModelScope dataset spec, downloaded; None for any other spec."""
    from smvl.splice import modelscope

    try:
        repo = modelscope.modelscope_id(spec, bare=False)
        if repo is None and (spec.startswith("cauldron:") or spec == "HuggingFaceM4/the_cauldron") \
                and modelscope.default_hub() == "modelscope":
            repo, subsets = MODELSCOPE_CAULDRON, spec.partition(":")[2] or subsets
        if repo is None:
            return None
        chosen = [s.strip() for s in subsets.split(",") if s.strip()] if subsets != "all" else []
        # Only the chosen subsets' folders: the whole of the_cauldron is 169 GB.
        patterns = tuple(f"{name}/*" for name in chosen) or None
        return modelscope.download_dataset(repo, patterns), subsets
    except modelscope.HubError as exc:
        raise UserError(str(exc)) from None


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
                lazy: bool = False, synthetic_scenes: float = 0.0) -> Iterator[Sample]:
    """Samples of `spec` for `split` ("train" or "test"); bad ones are skipped and counted in `skips`. With `lazy`,
    images may stay undecoded ImageRefs: pass the samples through `smvl.data.samples.lazy.decoded` before use.
    `synthetic_scenes`: the share of the synthetic set's *training* samples that describe the whole scene.

    `shard=(k, n)` yields every n-th record from the k-th, choosing before any image is decoded, so processes and
    DataLoader workers each decode only their own share; `max_samples` is then shared out between the shards.
    """
    skips = skips if skips is not None else SkipLog()
    cap = -(-max_samples // shard[1]) if max_samples is not None else None
    if spec == "synthetic":
        from smvl.data.sources.synthetic import make_sample

        n = max_samples or 1000
        scenes = synthetic_scenes if split == "train" else 0.0
        return _validated((make_sample(split, seed, i, scene_fraction=scenes) for i in range(shard[0], n, shard[1])),
                          skips)
    if spec == "synthetic-video":
        from smvl.data.sources.synthetic_video import generate

        n = max_samples or 1000
        return _validated((generate(split, seed, i) for i in range(shard[0], n, shard[1])), skips)
    if spec in ("synthetic-tools", "synthetic-thinking"):
        from smvl.data.sources.synthetic_tools import thinking_sample, tool_sample

        make, n = tool_sample if spec == "synthetic-tools" else thinking_sample, max_samples or 1000
        return _validated((make(split, seed, i) for i in range(shard[0], n, shard[1])), skips)
    options = dict(split=split, skips=skips, seed=seed, subsets=subsets, weights=weights, holdout=holdout,
                   streaming=streaming, shard=shard, lazy=lazy, synthetic_scenes=synthetic_scenes)
    if MIX_SEPARATOR in spec:
        from smvl.data.sources.mixing import weighted_interleave

        parts = mixture_parts(spec)
        # Every pass re-opens the source with the same seed: a fraction hold-out is a hash of it, so a repeated pass
        # never reads held-out records.
        streams = {f"{i}:{name}": (lambda _pass, name=name: open_source(name, **options, max_samples=max_samples))
                   for i, (name, _) in enumerate(parts)}
        weights_by_name = {key: w for key, (_, w) in zip(streams, parts)}
        return _capped(weighted_interleave(streams, weights_by_name, seed, repeat=split == "train"), cap)
    hub = _hub_folder(spec, subsets)
    if hub is not None:
        return open_source(str(hub[0]), **{**options, "subsets": hub[1]}, max_samples=max_samples)
    if spec.startswith("cauldron:") or spec == "HuggingFaceM4/the_cauldron":
        from smvl.data.sources.cauldron import cauldron_samples

        names = spec.partition(":")[2] or subsets
        return cauldron_samples(None, names, split, holdout, weights, seed, cap, streaming, skips, shard, lazy)
    path = Path(spec)
    from smvl.data.sources.captions import caption_file, read_caption_file
    from smvl.data.sources.webdataset import is_shard_spec, shard_samples

    if path.is_dir() and caption_file(path) is not None:
        path = caption_file(path)
    if path.suffix in (".csv", ".tsv") or path.name in ("captions.jsonl", "metadata.jsonl"):
        select = Selector(path.name, split, holdout, seed, shard)
        return _capped(read_caption_file(path, skips, select, seed, lazy), cap)
    if is_shard_spec(spec):
        return _capped(shard_samples(spec, split, holdout, seed, skips, shard, lazy), cap)
    if path.is_dir():
        from smvl.data.sources.cauldron import cauldron_samples

        return cauldron_samples(path, subsets, split, holdout, weights, seed, cap, streaming, skips, shard, lazy)
    if path.suffix in (".jsonl", ".json"):
        from smvl.data.sources.jsonl import read_chat_file

        return _capped(read_chat_file(path, skips, Selector(path.name, split, holdout, seed, shard), lazy), cap)
    raise _unknown(spec)


def _unknown(spec: str) -> Exception:
    path = Path(spec)
    if "/" in spec or path.suffix:
        return FileNotFoundError(f"data source {spec} does not exist")
    return UserError(f"unknown data source {spec!r}: use {', '.join(BUILT_IN)}, a .jsonl/.json file, a the_cauldron folder, "
                     "cauldron:<subsets>, a caption folder or .csv/.tsv, .tar shards, or modelscope:<owner>/<name>")


def check_source(spec: str, subsets: str = "all", weights: str | None = None) -> None:
    """Fail now, in one sentence naming the source, on what would only fail once reading starts: after the splice,
    a download, or hours into a run."""
    from smvl.data.sources.mixing import parse_weights

    if spec in BUILT_IN:
        return
    if MIX_SEPARATOR in spec:
        for name, _ in mixture_parts(spec):
            check_source(name, subsets, weights)
        return
    hub = _hub_folder(spec, subsets)
    if hub is not None:
        check_source(str(hub[0]), hub[1], weights)
        return
    if spec.startswith("cauldron:") or spec == "HuggingFaceM4/the_cauldron":
        names = spec.partition(":")[2] or subsets
        if weights and names != "all":
            parse_weights(weights, [n.strip() for n in names.split(",") if n.strip()])
        return
    path = Path(spec)
    from smvl.data.sources.captions import caption_file, check_caption_file
    from smvl.data.sources.webdataset import is_shard_spec, shard_files

    if path.is_dir() and caption_file(path) is not None:
        path = caption_file(path)
    if path.is_file() and (path.suffix in (".csv", ".tsv") or path.name in ("captions.jsonl", "metadata.jsonl")):
        check_caption_file(path)
        return
    if is_shard_spec(spec):
        shard_files(spec)
        return
    if path.is_dir():
        from smvl.data.sources.cauldron import local_subsets

        found = local_subsets(path)
        if not found:
            raise UserError(f"{spec} holds no <subset>/*.parquet folders (the_cauldron layout), no caption file "
                            "(captions.jsonl/.csv/.tsv) and no .tar shards")
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
