"""From the data section of the config to the train and eval batch streams.

The sample factories are small classes, not closures: DataLoader workers started by spawn or forkserver (macOS;
Linux from Python 3.14) receive the stream pickled.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from smvl.data.batches.collate import CollateOptions, Encoder
from smvl.data.batches.pack import pack
from smvl.data.batches.stream import BatchStream
from smvl.data.samples.skips import SkipLog
from smvl.data.sources import BUILT_IN
from smvl.errors import UserError
from smvl.train.config import TrainConfig
from smvl.train.held_out import HeldOut

SYNTHETIC = BUILT_IN  # made in code: small, made once, sized by data.synthetic_*


def collate_options(cfg: TrainConfig) -> CollateOptions:
    d = cfg.data
    return CollateOptions(max_length=d.max_length, labels=d.labels, padding=d.padding, images=d.images,
                          max_images=d.max_images, retile=d.retile, drop_thinking=d.drop_thinking, seed=cfg.seed)


def _open(cfg: TrainConfig, spec: str, split: str, skips: SkipLog, shard: tuple[int, int] = (0, 1), seed=None,
          lazy: bool = False, holdout: float | None = None):
    from smvl.data.sources import open_source

    d = cfg.data
    n = d.synthetic_train if split == "train" else d.synthetic_test
    if holdout is None:
        holdout = d.holdout if d.eval is None else 0  # an explicit eval source: nothing held out of either
    return open_source(
        spec, split=split, skips=skips, seed=cfg.seed if seed is None else seed, subsets=d.subsets,
        weights=d.weights, holdout=holdout, max_samples=d.max_samples if spec not in SYNTHETIC else n,
        streaming=d.streaming, shard=shard, lazy=lazy, synthetic_scenes=d.synthetic_scenes,
    )


def eval_samples(cfg: TrainConfig, skips: SkipLog | None = None, lazy: bool = False) -> list:
    """The held-out samples; with `lazy` their images stay undecoded references (see `HeldOut`)."""
    skips = skips or SkipLog(cfg.data.max_skip_fraction)
    spec = cfg.data.eval or cfg.data.train
    return list(_open(cfg, spec, "test" if cfg.data.eval is None else "train", skips, lazy=lazy))


def text_eval_samples(cfg: TrainConfig, skips: SkipLog) -> list:
    """The text-only source's held-out records: evaluated on their own (`eval_text_loss`), never trained on. Held
    out even beside an explicit eval source, which holds images: this one tells whether the LLM keeps its text."""
    d = cfg.data
    if not d.text_only or d.text_only_ratio <= 0:
        return []
    return list(_open(cfg, d.text_only, "test", skips, holdout=d.holdout))


def require_training_records(cfg: TrainConfig) -> None:
    """A source the hold-out takes whole (a first small JSONL of 56 records under the default `holdout: 64`) would
    only fail once training asks for its first batch, after the splice (or, as the text-only source, never mix in
    at all): say so now, in one line."""
    d = cfg.data
    if d.eval is None:  # an explicit eval source: nothing is held out of the training data
        _require_records(cfg, "data.train", d.train, d.holdout)
    if d.text_only and d.text_only_ratio > 0:
        _require_records(cfg, "data.text_only", d.text_only, d.holdout)


def _require_records(cfg: TrainConfig, key: str, spec: str, holdout: float) -> None:
    from smvl.data.sources import mixture_parts

    if spec in SYNTHETIC or not all(Path(n).exists() for n, _ in mixture_parts(spec)):
        return  # hub sources are read when training starts: not worth a download here
    if next(iter(_open(cfg, spec, "train", SkipLog(1.0), lazy=True, holdout=holdout)), None) is not None:
        return
    held = len(list(_open(cfg, spec, "test", SkipLog(1.0), lazy=True, holdout=holdout)))
    if held:  # with none at all the skip table says why, once reading starts
        raise UserError(f"{key} {spec}: all {held} usable records are held out for evaluation (data.holdout="
                        f"{cfg.data.holdout:g}), none is left to train on: lower --data.holdout (a fraction such as "
                        "0.1 holds out a tenth) or name separate eval data with --data.eval")


def shuffle_buffer(samples, size: int, rng: random.Random):
    """Approximate shuffling of a stream with a bounded buffer (the whole set never has to be in memory). Fed
    undecoded samples: the buffer holds image bytes or paths, never decoded images."""
    buffer = []
    for sample in samples:
        buffer.append(sample)
        if len(buffer) >= size:
            yield buffer.pop(rng.randrange(len(buffer)))
    rng.shuffle(buffer)
    yield from buffer


class SyntheticTrain:
    """`(epoch, shard) -> samples` for the synthetic set: small, so made once and reshuffled each epoch."""

    def __init__(self, cfg: TrainConfig, skips: SkipLog):
        self.cfg, self.samples = cfg, list(_open(cfg, cfg.data.train, "train", skips))
        self.text = TextOnly(cfg, skips)

    def __call__(self, epoch: int, shard: tuple[int, int]):
        order = list(range(len(self.samples)))
        random.Random(self.cfg.seed * 7919 + epoch).shuffle(order)
        return self.text.mix((self.samples[i] for i in order[shard[0]::shard[1]]), epoch, shard)


class StreamedTrain:
    """`(epoch, shard) -> samples` for every other source: re-read each epoch through a seeded shuffle buffer; only
    this shard's records are read, and their images stay undecoded (the buffer holds compressed bytes or paths):
    `BatchStream` decodes each as it encodes it, and a resume passes the trained batches without decoding them."""

    def __init__(self, cfg: TrainConfig, skips: SkipLog):
        self.cfg, self.skips = cfg, skips
        self.text = TextOnly(cfg, skips)

    def __call__(self, epoch: int, shard: tuple[int, int]):
        cfg = self.cfg
        rng = random.Random(cfg.seed * 7919 + epoch * 104_729 + shard[0])
        records = _open(cfg, cfg.data.train, "train", self.skips, shard, lazy=True)
        return self.text.mix(shuffle_buffer(records, cfg.data.shuffle_buffer, rng), epoch, shard)


class TextOnly:
    """The text-only samples mixed in at `data.text_only_ratio`: one endless stream per shard, each pass over the
    source through a fresh seeded shuffle buffer, and each epoch going on where the last stopped. Re-opened every
    epoch, a run would train on the file's first records, in file order, every epoch and never see the rest."""

    def __init__(self, cfg: TrainConfig, skips: SkipLog):
        self.cfg, self.skips = cfg, skips
        self.streams: dict[tuple[int, int], Iterator] = {}

    def __getstate__(self) -> dict:
        # A DataLoader worker started by spawn gets a pickled copy: open generators do not pickle, and a worker
        # starts its own streams anyway.
        return {**self.__dict__, "streams": {}}

    def _passes(self, shard: tuple[int, int]) -> Iterator:
        d = self.cfg.data
        for n in itertools.count():
            rng = random.Random(self.cfg.seed * 7919 + n * 15_485_863 + shard[0])
            records = _open(self.cfg, d.text_only, "train", self.skips, shard, holdout=d.holdout)
            empty = True
            for sample in shuffle_buffer(records, d.shuffle_buffer, rng):
                empty = False
                yield sample
            if empty:
                return

    def mix(self, samples, epoch: int, shard: tuple[int, int]):
        d = self.cfg.data
        if not d.text_only or d.text_only_ratio <= 0:
            return samples
        from smvl.data.sources.mixing import mix_text_only

        if shard not in self.streams:
            self.streams[shard] = self._passes(shard)
        return mix_text_only(samples, self.streams[shard], d.text_only_ratio,
                             seed=self.cfg.seed + epoch * 31 + shard[0])


def train_samples(cfg: TrainConfig, skips: SkipLog):
    if cfg.data.train in SYNTHETIC:
        return SyntheticTrain(cfg, skips)
    return StreamedTrain(cfg, skips)


def stage_config(cfg: TrainConfig, spec: str | None) -> TrainConfig:
    """The config a stage with its own training data reads through: evaluation stays on the run's eval data, so
    nothing is held out of the stage's source."""
    if not spec or spec == cfg.data.train:
        return cfg
    return replace(cfg, data=replace(cfg.data, train=spec, eval=cfg.data.eval or cfg.data.train))


def groups_by_length(data) -> bool:
    """`data.group_by_length`, or by default: only when batches are padded rather than packed."""
    return (not data.packing) if data.group_by_length is None else data.group_by_length


def train_stream(cfg: TrainConfig, encoder: Encoder, skips: SkipLog, spec: str | None = None) -> BatchStream:
    cfg = stage_config(cfg, spec)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    return BatchStream(train_samples(cfg, skips), encoder, cfg.batch_size, encoder.options,
                       seed=cfg.seed, pack=pack if cfg.data.packing else None, group_by_length=groups_by_length(cfg.data), rank=rank,
                       world_size=world, skips=skips, token_budget=cfg.data.pack_tokens if cfg.data.packing else None)


class Streams(NamedTuple):
    train: BatchStream
    eval: BatchStream
    text_eval: BatchStream | None = None  # the text-only source's held-out records (`eval_text_loss`)


def _eval_stream(cfg: TrainConfig, samples: list, encoder: Encoder, skips: SkipLog, source: str) -> BatchStream:
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    held_out = HeldOut(samples, encoder, rank, world, skips, source)
    # Batches of batch_size samples (no token budget), so every rank's equal share gives equal batch counts. The
    # stream's own log never stops a run: its rejections were counted when HeldOut chose the samples.
    return BatchStream(held_out, encoder, cfg.batch_size, encoder.options, seed=cfg.seed,
                       pack=pack if cfg.data.packing else None, group_by_length=False, epochs=1,
                       skips=SkipLog(float("inf")))


def build_streams(cfg: TrainConfig, processor) -> tuple[Streams, SkipLog]:
    skips = SkipLog(cfg.data.max_skip_fraction)
    encoder = Encoder(processor, collate_options(cfg))
    rank = int(os.environ.get("RANK", "0"))
    train = train_stream(cfg, encoder, skips)
    # Every rank reads the whole held-out set. Its bad records are counted once (rank 0); each rank counts its own
    # share of the good ones and the encoder's rejections among them (`HeldOut`): the run's table sums the ranks.
    reading = SkipLog(float("inf"))
    held_out, text = eval_samples(cfg, reading, lazy=True), text_eval_samples(cfg, reading)
    if rank == 0:
        skips.merge({"seen": reading.skipped, "by_reason": dict(reading.by_reason),
                     "examples": dict(reading.examples)}, check=False)
    evaluation = _eval_stream(cfg, held_out, encoder, skips, cfg.data.eval or cfg.data.train)
    text_eval = _eval_stream(cfg, text, encoder, skips, cfg.data.text_only) if text else None
    return Streams(train, evaluation, text_eval), skips
