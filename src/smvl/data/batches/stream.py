"""Samples -> encoded -> collated batches, as one iterable the trainer and evaluator consume.

An IterableDataset rather than a map-style one: the_cauldron streams (169 GB never sits in memory), bad samples are
skipped inline and counted, and length grouping works on a rolling buffer. Each (rank, worker) asks the source for
its own shard (every n-th record, chosen before decoding), so processes never see the same sample, never decode
another's images, and no batch has to be split across processes. Batches are formed from token counts alone, so a
resumed stream passes the batches already trained without decoding their images (`BatchStream.skipping`).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import torch
from torch.utils.data import IterableDataset, get_worker_info

from smvl.data.batches.collate import CollateOptions, Encoded, Encoder, collate
from smvl.data.batches.heap import keep_freed_memory
from smvl.data.batches.pack import RowPacker
from smvl.data.samples.images import image_size
from smvl.data.samples.lazy import ImageRef, VideoRef, decode
from smvl.data.samples.sample import BadSample, Sample
from smvl.data.samples.skips import SkipLog

IMAGES_LEFT_OUT = "images left out (data.images: first keeps one a sample)"
CALLS_LEFT_OUT = "tool calls left out with their results (turns past max_length)"
SKIPS_KEY = "smvl_skips"  # a worker's skip counts since its previous batch, riding with the batch


def length_grouped(items: list[Encoded], batch_size: int, rng: random.Random) -> list[list[Encoded]]:
    """Batches of similar length (less padding), in random order so long batches are not all at the end."""
    items = sorted(items, key=lambda e: len(e.input_ids))
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    rng.shuffle(batches)
    return batches


def chunks(items: Iterable, size: int) -> Iterator[list]:
    items = iter(items)
    while chunk := list(islice(items, size)):
        yield chunk


@dataclass
class Measured(Encoded):
    """A sample encoded without pixels while a resume walks past trained batches: lengths enough to form the
    batches, and the sample itself, encoded in full should its batch be one the run trains on."""

    sample: Sample | None = None


def _refs(sample: Sample) -> bool:
    return any(isinstance(m, (ImageRef, VideoRef)) for m in (*sample.images, *sample.videos))


class BatchStream(IterableDataset):
    """Yields collated batches from `samples(epoch, shard)`; `epochs=None` repeats forever (the trainer counts
    steps). Samples may carry their images undecoded (`ImageRef`): they are decoded here, one at a time."""

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
        open_rows: int = 4,
    ):
        self.samples, self.encoder, self.batch_size, self.options = samples, encoder, batch_size, options
        self.group_by_length, self.buffer_batches = group_by_length, buffer_batches
        self.rank, self.world_size, self.seed, self.epochs = rank, world_size, seed, epochs
        self.skips = skips if skips is not None else SkipLog()
        self.pack, self.token_budget, self.open_rows = pack, token_budget, open_rows
        self.pad_id = encoder.tok.pad_token_id
        # False while the LLM is frozen: a sample without images cannot change a frozen model (set per stage).
        self.keep_text_only = True
        self.skip_batches = 0  # see `skipping`

    def skipping(self, batches: int) -> BatchStream:
        """This stream resumed `batches` batches in (counted over its DataLoader's workers, which take turns): the
        batches an uninterrupted run yields from there on, the passed ones formed from token counts alone. Their
        images are opened for their size only (PIL reads the header), never decoded or tiled, so a resume costs
        tokenising what came before rather than loading it again. Exact but for an image whose pixel data is
        broken behind a sound header: an uninterrupted run skips it, a resume counts its tokens and moves later
        batch boundaries. Videos are decoded all the same: their frame counts set their token counts."""
        stream = copy.copy(self)
        stream.skip_batches = batches
        return stream

    def _worker(self) -> tuple[int, int]:
        """(workers, the worker whose batches this one makes). The DataLoader takes batch k from worker k mod
        workers, and a resumed one starts again at worker 0: so its worker w makes what worker (w + skipped) mod
        workers would have made next."""
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        return workers, (worker + self.skip_batches) % workers

    def _shard(self) -> tuple[int, int]:
        workers, worker = self._worker()
        return self.rank * workers + worker, self.world_size * workers

    def _own_skip(self) -> int:
        """This worker's share of `skip_batches`: those its role made before them."""
        workers, worker = self._worker()
        return len(range(worker, self.skip_batches, workers))

    def encoded(self, epoch: int, measuring: Callable[[], bool] = lambda: False) -> Iterator[Encoded]:
        """The epoch's samples encoded; while `measuring()`, without pixels (`Measured`)."""
        for i, sample in enumerate(self.samples(epoch, self._shard())):
            if not sample.images and not self.keep_text_only:
                continue
            try:
                enc = self._measure(sample) if measuring() else self._encode(sample)
            except BadSample as exc:
                self.skips.reject(sample.id or f"#{i}", exc.reason)
                continue
            if enc.images_left_out and not measuring():
                self.skips.note(IMAGES_LEFT_OUT, enc.images_left_out)
            if enc.calls_left_out and not measuring():
                self.skips.note(CALLS_LEFT_OUT, enc.calls_left_out)
            yield enc

    def _encode(self, sample: Sample) -> Encoded:
        if _refs(sample):
            # A copy: a `Measured` sample keeps its references for this full encoding.
            sample = decode(copy.copy(sample), self.encoder.decode_size, self.encoder.sampling)
        return self.encoder(sample)

    def _measure(self, sample: Sample) -> Measured:
        draft = self.encoder.decode_size
        images = [image_size(m.value, m.base_dir, draft=draft) if isinstance(m, ImageRef) else m
                  for m in sample.images]
        sizes = copy.copy(sample)
        sizes.images = images
        sizes.videos = [v.load(self.encoder.sampling) if isinstance(v, VideoRef) else v for v in sample.videos]
        return Measured(**vars(self.encoder(sizes, pixels=False)), sample=sample)

    def _emit(self, batch: list[Encoded]) -> dict[str, torch.Tensor] | None:
        batch = [e for e in map(self._complete, batch) if e is not None]
        if not batch:
            return None
        out = self.pack(batch) if self.pack else collate(batch, self.pad_id, self.options)
        if get_worker_info() is not None:
            out[SKIPS_KEY] = self.skips.drain()
        return out

    def _complete(self, e: Encoded) -> Encoded | None:
        if not isinstance(e, Measured):
            return e
        try:
            return self._encode(e.sample)
        except BadSample as exc:  # broken pixels under a sound header: seen only now
            self.skips.reject(e.id or "?", exc.reason)
            return None

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if get_worker_info() is not None:
            self.skips.detach()
            keep_freed_memory()  # a loader process: its per-sample buffers are reused, not page-faulted afresh
        skip = self._own_skip()
        epoch = 0
        while self.epochs is None or epoch < self.epochs:
            produced = False
            # `skip` is read as each sample is taken: samples are measured only while batches are still passed.
            for batch in self._batches(epoch, lambda: skip > 0):
                produced = True
                if skip:
                    skip -= 1
                    continue
                out = self._emit(batch)
                if out is not None:
                    yield out
            if not produced:
                raise RuntimeError(f"the data source yielded no usable sample in epoch {epoch}\n{self.skips.table()}")
            epoch += 1

    def _batches(self, epoch: int, measuring: Callable[[], bool]) -> Iterator[list[Encoded]]:
        """The epoch's batches, formed from token counts alone (so passed batches can be formed from `Measured`
        samples). Lazily: each sample is taken only once the batches before it have been consumed."""
        rng = random.Random(self.seed * 1000 + epoch)
        samples = self.encoded(epoch, measuring)
        if self.token_budget:
            yield from self._rows(samples, rng)
        elif self.group_by_length:
            for buffer in chunks(samples, self.batch_size * self.buffer_batches):
                yield from length_grouped(buffer, self.batch_size, rng)
        else:
            yield from chunks(samples, self.batch_size)

    def _rows(self, samples: Iterator[Encoded], rng: random.Random) -> Iterator[list[Encoded]]:
        """Rows under the token budget, topped up across rounds (`RowPacker`) and flushed at the epoch's end.
        Grouped by length: each buffer goes in longest first (first-fit decreasing), its rows in random order."""
        packer = RowPacker(self.token_budget, self.open_rows)
        if not self.group_by_length:
            for e in samples:
                yield from packer.add(e)
        else:
            for buffer in chunks(samples, self.batch_size * self.buffer_batches):
                rows = [row for e in sorted(buffer, key=lambda e: -len(e.input_ids)) for row in packer.add(e)]
                rng.shuffle(rows)
                yield from rows
        yield from packer.flush()


def merge_worker_skips(batch: dict, skips: SkipLog) -> dict:
    """Bring a DataLoader worker's skip counts home (they ride with each batch, see `_emit`), so the final table and
    the stop past `max_skip_fraction` cover the whole run whatever the number of workers. Done where batches are
    consumed rather than in a DataLoader subclass: the Trainer rebuilds plain DataLoaders when it resumes."""
    delta = batch.pop(SKIPS_KEY, None)
    if delta is not None:
        skips.merge(delta)
    return batch
