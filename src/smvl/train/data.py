"""From the data section of the config to the train and eval batch streams."""

from __future__ import annotations

import os
import random

from smvl.data.collate import CollateOptions, Encoder
from smvl.data.pack import pack
from smvl.data.skips import SkipLog
from smvl.data.stream import BatchStream
from smvl.train.config import TrainConfig


def collate_options(cfg: TrainConfig) -> CollateOptions:
    d = cfg.data
    return CollateOptions(max_length=d.max_length, labels=d.labels, padding=d.padding, images=d.images,
                          max_images=d.max_images, retile=d.retile)


def _open(cfg: TrainConfig, spec: str, split: str, skips: SkipLog, shard: tuple[int, int] = (0, 1), seed=None):
    from smvl.data.sources import open_source

    d = cfg.data
    n = d.synthetic_train if split == "train" else d.synthetic_test
    holdout = d.holdout if d.eval is None else 0  # an explicit eval source: nothing held out of either
    return open_source(
        spec, split=split, skips=skips, seed=cfg.seed if seed is None else seed, subsets=d.subsets,
        weights=d.weights, holdout=holdout, max_samples=d.max_samples if spec != "synthetic" else n,
        streaming=d.streaming, shard=shard,
    )


def eval_samples(cfg: TrainConfig, skips: SkipLog | None = None) -> list:
    skips = skips or SkipLog(cfg.data.max_skip_fraction)
    spec = cfg.data.eval or cfg.data.train
    return list(_open(cfg, spec, "test" if cfg.data.eval is None else "train", skips))


def shuffle_buffer(samples, size: int, rng: random.Random):
    """Approximate shuffling of a stream with a bounded buffer (the whole set never has to be in memory)."""
    buffer = []
    for sample in samples:
        buffer.append(sample)
        if len(buffer) >= size:
            yield buffer.pop(rng.randrange(len(buffer)))
    rng.shuffle(buffer)
    yield from buffer


def train_samples(cfg: TrainConfig, skips: SkipLog):
    """`(epoch, shard) -> samples`. The synthetic set is small: made once, reshuffled each epoch. Every other
    source is re-read each epoch, only this shard's records decoded, through a seeded shuffle buffer."""
    d = cfg.data
    if d.train == "synthetic":
        samples = list(_open(cfg, d.train, "train", skips))

        def shuffled(epoch: int, shard: tuple[int, int]):
            order = list(range(len(samples)))
            random.Random(cfg.seed * 7919 + epoch).shuffle(order)
            yield from _mix(cfg, (samples[i] for i in order[shard[0]::shard[1]]), epoch, shard)
        return shuffled

    def stream(epoch: int, shard: tuple[int, int]):
        rng = random.Random(cfg.seed * 7919 + epoch * 104_729 + shard[0])
        samples = shuffle_buffer(_open(cfg, d.train, "train", skips, shard), d.shuffle_buffer, rng)
        yield from _mix(cfg, samples, epoch, shard)
    return stream


def _mix(cfg: TrainConfig, samples, epoch: int, shard: tuple[int, int]):
    d = cfg.data
    if not d.text_only or d.text_only_ratio <= 0:
        return samples
    from smvl.data.mixing import mix_text_only

    text = _open(cfg, d.text_only, "train", SkipLog(d.max_skip_fraction), shard, seed=cfg.seed + epoch)
    return mix_text_only(samples, text, d.text_only_ratio, seed=cfg.seed + epoch * 31 + shard[0])


def build_streams(cfg: TrainConfig, processor):
    skips = SkipLog(cfg.data.max_skip_fraction)
    encoder = Encoder(processor, collate_options(cfg))
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    common = dict(encoder=encoder, batch_size=cfg.batch_size, options=encoder.options, seed=cfg.seed,
                  pack=pack if cfg.data.packing else None,
                  token_budget=cfg.data.pack_tokens if cfg.data.packing else None)
    train = BatchStream(train_samples(cfg, skips), group_by_length=cfg.data.group_by_length, rank=rank,
                        world_size=world, skips=skips, **common)
    held_out = eval_samples(cfg, skips)
    # Every rank evaluates the whole held-out set: equal batch counts keep the collectives in step.
    evaluation = BatchStream(lambda epoch, shard: held_out, group_by_length=False, epochs=1, **common)
    return (train, evaluation), skips
