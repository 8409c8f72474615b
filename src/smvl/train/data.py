"""From the data section of the config to the train and eval batch streams."""

from __future__ import annotations

import os
import random

from smvl.data.collate import CollateOptions, Encoder
from smvl.data.skips import SkipLog
from smvl.data.stream import BatchStream
from smvl.train.config import TrainConfig


def collate_options(cfg: TrainConfig) -> CollateOptions:
    d = cfg.data
    return CollateOptions(max_length=d.max_length, labels=d.labels, padding=d.padding, images=d.images,
                          max_images=d.max_images, retile=d.retile)


def _open(cfg: TrainConfig, spec: str, split: str, skips: SkipLog):
    from smvl.data.sources import open_source

    d = cfg.data
    n = d.synthetic_train if split == "train" else d.synthetic_test
    holdout = d.holdout if d.eval is None else 0  # an explicit eval source: nothing held out of either
    return open_source(
        spec, split=split, skips=skips, seed=cfg.seed, subsets=d.subsets, weights=d.weights, holdout=holdout,
        max_samples=d.max_samples if spec != "synthetic" else n, streaming=d.streaming,
    )


def eval_samples(cfg: TrainConfig, skips: SkipLog | None = None) -> list:
    skips = skips or SkipLog(cfg.data.max_skip_fraction)
    spec = cfg.data.eval or cfg.data.train
    return list(_open(cfg, spec, "test" if cfg.data.eval is None else "train", skips))


def train_samples(cfg: TrainConfig, skips: SkipLog):
    """`epoch -> samples`: a materialised source is reshuffled each epoch; a streaming one is re-read in order."""
    d = cfg.data
    if d.streaming:
        def stream(epoch: int):
            yield from _mix(cfg, _open(cfg, d.train, "train", skips), epoch)
        return stream
    samples = list(_open(cfg, d.train, "train", skips))

    def shuffled(epoch: int):
        order = list(range(len(samples)))
        random.Random(cfg.seed * 7919 + epoch).shuffle(order)
        yield from _mix(cfg, (samples[i] for i in order), epoch)
    return shuffled


def _mix(cfg: TrainConfig, samples, epoch: int):
    d = cfg.data
    if not d.text_only or d.text_only_ratio <= 0:
        return samples
    from smvl.data.mixing import mix_text_only

    text = _open(cfg, d.text_only, "train", SkipLog(d.max_skip_fraction))
    return mix_text_only(samples, text, d.text_only_ratio, seed=cfg.seed + epoch)


def build_streams(cfg: TrainConfig, processor):
    skips = SkipLog(cfg.data.max_skip_fraction)
    encoder = Encoder(processor, collate_options(cfg))
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    common = dict(encoder=encoder, batch_size=cfg.batch_size, options=encoder.options, seed=cfg.seed)
    train = BatchStream(train_samples(cfg, skips), group_by_length=cfg.data.group_by_length, rank=rank,
                        world_size=world, skips=skips, **common)
    held_out = eval_samples(cfg, skips)
    # Every rank evaluates the whole held-out set: equal batch counts keep the collectives in step.
    evaluation = BatchStream(lambda epoch: held_out, group_by_length=False, epochs=1, **common)
    return (train, evaluation), skips
