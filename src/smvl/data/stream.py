"""Samples -> encoded -> collated batches, as one iterable the trainer and evaluator consume.

An IterableDataset rather than a map-style one: the_cauldron streams (169 GB never sits in memory), bad samples are
skipped inline and counted, and length grouping works on a rolling buffer. Each (rank, worker) asks the source for
its own shard (every n-th record, chosen before decoding), so processes never see the same sample, never decode
another's images, and no batch has to be split across processes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator

import torch
from torch.utils.data import IterableDataset, get_worker_info

from smvl.data.collate import CollateOptions, Encoded, Encoder, collate
from smvl.data.heap import keep_freed_memory
from smvl.data.pack import budget_batches
from smvl.data.sample import BadSample, Sample
from smvl.data.skips import SkipLog

SKIPS_KEY = "smvl_skips"  # a worker's skip counts since its previous batch, riding with the batch


def length_grouped(items: list[Encoded], batch_size: int, rng: random.Random) -> list[list[Encoded]]:
    """Batches of similar length (less padding), in random order so long batches are not all at the end."""
    items = sorted(items, key=lambda e: len(e.input_ids))
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    rng.shuffle(batches)
    return batches


class BatchStream(IterableDataset):
    """Yields collated batches from `samples(epoch, shard)`; `epochs=None` repeats forever (the trainer counts
    steps)."""

    def __init__(
        self,
        samples: Callable[[int, tuple[int, int]], Iterable[Sample]],
        encoder: Encoder,
        batch_size: int,
        options: CollateOptions,
        *,
        group_by_length: bool = True,
        buffer_batches: int = 16,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        epochs: int | None = None,
        skips: SkipLog | None = None,
        pack: Callable[[list[Encoded]], dict] | None = None,
        token_budget: int | None = None,
    ):
        self.samples, self.encoder, self.batch_size, self.options = samples, encoder, batch_size, options
        self.group_by_length, self.buffer_batches = group_by_length, buffer_batches
        self.rank, self.world_size, self.seed, self.epochs = rank, world_size, seed, epochs
        self.skips = skips if skips is not None else SkipLog()
        self.pack, self.token_budget = pack, token_budget
        self.pad_id = encoder.tok.pad_token_id
        # False while the LLM is frozen: a sample without images cannot change a frozen model (set per stage).
        self.keep_text_only = True

    def _shard(self) -> tuple[int, int]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        return self.rank * workers + worker, self.world_size * workers

    def encoded(self, epoch: int) -> Iterator[Encoded]:
        for i, sample in enumerate(self.samples(epoch, self._shard())):
            if not sample.images and not self.keep_text_only:
                continue
            try:
                enc = self.encoder(sample)
            except BadSample as exc:
                self.skips.reject(sample.id or f"#{i}", exc.reason)
                continue
            yield enc

    def _emit(self, batch: list[Encoded]) -> dict[str, torch.Tensor]:
        out = self.pack(batch) if self.pack else collate(batch, self.pad_id, self.options)
        if get_worker_info() is not None:
            out[SKIPS_KEY] = self.skips.drain()
        return out

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if get_worker_info() is not None:
            self.skips.detach()
            keep_freed_memory()  # a loader process: its per-sample buffers are reused, not page-faulted afresh
        epoch = 0
        while self.epochs is None or epoch < self.epochs:
            rng = random.Random(self.seed * 1000 + epoch)
            buffer: list[Encoded] = []
            size = self.batch_size * (self.buffer_batches if self.group_by_length else 1)
            produced = False
            for enc in self.encoded(epoch):
                buffer.append(enc)
                if len(buffer) >= size:
                    produced = True
                    yield from map(self._emit, self._batches(buffer, rng))
                    buffer = []
            if buffer:
                produced = True
                yield from map(self._emit, self._batches(buffer, rng))
            if not produced:
                raise RuntimeError(f"the data source yielded no usable sample in epoch {epoch}\n{self.skips.table()}")
            epoch += 1

    def _batches(self, buffer: list[Encoded], rng: random.Random) -> list[list[Encoded]]:
        if self.token_budget:
            batches = budget_batches(buffer, self.token_budget)
            rng.shuffle(batches)
            return batches
        if self.group_by_length:
            return length_grouped(buffer, self.batch_size, rng)
        return [buffer[i : i + self.batch_size] for i in range(0, len(buffer), self.batch_size)]


def merge_worker_skips(batch: dict, skips: SkipLog) -> dict:
    """Bring a DataLoader worker's skip counts home (they ride with each batch, see `_emit`), so the final table and
    the stop past `max_skip_fraction` cover the whole run whatever the number of workers. Done where batches are
    consumed rather than in a DataLoader subclass: the Trainer rebuilds plain DataLoaders when it resumes."""
    delta = batch.pop(SKIPS_KEY, None)
    if delta is not None:
        skips.merge(delta)
    return batch
