"""From the data section of the config to the train and eval batch streams.

The sample factories are small classes, not closures: DataLoader workers started by spawn or forkserver (macOS;
Linux from Python 3.14) receive the stream pickled.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace

from smvl.data.collate import CollateOptions, Encoder
from smvl.data.lazy import decoded
from smvl.data.pack import pack
from smvl.data.skips import SkipLog
from smvl.data.stream import BatchStream
from smvl.train.config import TrainConfig

SYNTHETIC = ("synthetic", "synthetic-video")  # made in code: small, made once, sized by data.synthetic_*


def collate_options(cfg: TrainConfig) -> CollateOptions:
    d = cfg.data
    return CollateOptions(max_length=d.max_length, labels=d.labels, padding=d.padding, images=d.images,
                          max_images=d.max_images, retile=d.retile)


def _open(cfg: TrainConfig, spec: str, split: str, skips: SkipLog, shard: tuple[int, int] = (0, 1), seed=None,
          lazy: bool = False):
    from smvl.data.sources import open_source

    d = cfg.data
    n = d.synthetic_train if split == "train" else d.synthetic_test
    holdout = d.holdout if d.eval is None else 0  # an explicit eval source: nothing held out of either
    return open_source(
        spec, split=split, skips=skips, seed=cfg.seed if seed is None else seed, subsets=d.subsets,
        weights=d.weights, holdout=holdout, max_samples=d.max_samples if spec not in SYNTHETIC else n,
        streaming=d.streaming, shard=shard, lazy=lazy, synthetic_scenes=d.synthetic_scenes,
    )


def eval_samples(cfg: TrainConfig, skips: SkipLog | None = None) -> list:
    skips = skips or SkipLog(cfg.data.max_skip_fraction)
    spec = cfg.data.eval or cfg.data.train
    return list(_open(cfg, spec, "test" if cfg.data.eval is None else "train", skips))


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

    def __call__(self, epoch: int, shard: tuple[int, int]):
        order = list(range(len(self.samples)))
        random.Random(self.cfg.seed * 7919 + epoch).shuffle(order)
        return _mix(self.cfg, (self.samples[i] for i in order[shard[0]::shard[1]]), epoch, shard)


class StreamedTrain:
    """`(epoch, shard) -> samples` for every other source: re-read each epoch through a seeded shuffle buffer; only
    this shard's records are decoded, and only once out of the buffer (JPEGs at the reduced scale `draft` allows,
    `Encoder.decode_size`)."""

    def __init__(self, cfg: TrainConfig, skips: SkipLog, draft=None, sampling=None):
        self.cfg, self.skips, self.draft, self.sampling = cfg, skips, draft, sampling

    def __call__(self, epoch: int, shard: tuple[int, int]):
        cfg = self.cfg
        rng = random.Random(cfg.seed * 7919 + epoch * 104_729 + shard[0])
        records = _open(cfg, cfg.data.train, "train", self.skips, shard, lazy=True)
        samples = decoded(shuffle_buffer(records, cfg.data.shuffle_buffer, rng), self.skips, self.draft,
                          self.sampling)
        return _mix(cfg, samples, epoch, shard)


class HeldOut:
    """This rank's share of the held-out samples, the same count on every rank: evaluation's collectives need equal
    batch counts, so short shards repeat their first samples (as torch's DistributedSampler pads)."""

    def __init__(self, samples: list, rank: int, world: int):
        per_rank = -(-len(samples) // world)
        mine = samples[rank::world]
        self.samples = (mine + mine[: per_rank - len(mine)]) if mine else samples[:per_rank]

    def __call__(self, epoch: int, shard: tuple[int, int]):
        return self.samples


def train_samples(cfg: TrainConfig, skips: SkipLog, draft=None, sampling=None):
    if cfg.data.train in SYNTHETIC:
        return SyntheticTrain(cfg, skips)
    return StreamedTrain(cfg, skips, draft, sampling)


def _mix(cfg: TrainConfig, samples, epoch: int, shard: tuple[int, int]):
    d = cfg.data
    if not d.text_only or d.text_only_ratio <= 0:
        return samples
    from smvl.data.mixing import mix_text_only

    text = _open(cfg, d.text_only, "train", SkipLog(d.max_skip_fraction), shard, seed=cfg.seed + epoch)
    return mix_text_only(samples, text, d.text_only_ratio, seed=cfg.seed + epoch * 31 + shard[0])


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
    return BatchStream(train_samples(cfg, skips, encoder.decode_size, encoder.sampling), encoder, cfg.batch_size, encoder.options,
                       seed=cfg.seed, pack=pack if cfg.data.packing else None, group_by_length=groups_by_length(cfg.data), rank=rank,
                       world_size=world, skips=skips, token_budget=cfg.data.pack_tokens if cfg.data.packing else None)


def build_streams(cfg: TrainConfig, processor):
    skips = SkipLog(cfg.data.max_skip_fraction)
    encoder = Encoder(processor, collate_options(cfg))
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    train = train_stream(cfg, encoder, skips)
    # Every rank reads the held-out set; rank 0 counts its skips (the run's table sums the ranks' counts).
    held_out = eval_samples(cfg, skips if rank == 0 else SkipLog(cfg.data.max_skip_fraction))
    # Batches of batch_size samples (no token budget), so every rank's equal share gives equal batch counts.
    evaluation = BatchStream(HeldOut(held_out, rank, world), encoder, cfg.batch_size, encoder.options, seed=cfg.seed,
                             pack=pack if cfg.data.packing else None, group_by_length=False, epochs=1)
    return (train, evaluation), skips
