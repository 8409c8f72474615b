"""The held-out samples each rank evaluates: only samples the encoder accepts, the same count on every rank, images
kept undecoded between evaluations.

Evaluation's collectives (the per-step loss gather) need every rank to run the same number of batches. Equal shares
of the raw held-out set are not enough: the encoder then rejects some samples (too long, marker text), a different
number on each rank, and the rank with fewer batches waits forever. So each rank encodes its share once, up front,
keeps the samples that pass, and pads to the raw per-rank count by repeating them (as torch's DistributedSampler
pads): the count depends only on the size of the whole held-out set, which every rank knows, so no collective is
needed and none can diverge. The encoder is deterministic, so a sample accepted once is accepted at every
evaluation.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

from smvl.data.batches.collate import Encoder
from smvl.data.samples.lazy import decode
from smvl.data.samples.sample import BadSample, Sample
from smvl.data.samples.skips import SkipLog
from smvl.errors import UserError


def _usable(sample: Sample, encoder: Encoder) -> str | None:
    """None when the sample encodes; else the reason it does not."""
    try:
        encoder(_decoded(sample, encoder))
    except BadSample as exc:
        return exc.reason
    return None


def _decoded(sample: Sample, encoder: Encoder) -> Sample:
    # A copy: the held-out list keeps the undecoded references (compressed bytes or paths), not full-size images.
    return decode(copy.copy(sample), encoder.decode_size, encoder.sampling)


class HeldOut:
    """`(epoch, shard) -> samples`: this rank's share of the held-out samples, decoded as they are used.

    This rank's share is counted once, here, into `skips` (the run's table sums the ranks): its samples as read, the
    rejected ones by reason. They never stop the run by themselves: a held-out set is small (a few long samples
    would be over the guard's bar), and the training stream, read from the same sources, applies the guard."""

    def __init__(self, samples: list[Sample], encoder: Encoder, rank: int, world: int, skips: SkipLog,
                 source: str = "the eval data"):
        self.encoder = encoder
        per_rank = -(-len(samples) // world)
        mine = samples[rank::world]
        held = SkipLog(float("inf"))
        kept = []
        for sample in mine:
            reason = _usable(sample, encoder)
            if reason is None:
                kept.append(sample)
            else:
                held.reject(sample.id or "?", reason)
        if not kept and per_rank:
            # Nothing of this rank's own share encodes: borrow from the others' (never counted twice).
            own = set(map(id, mine))
            kept = next(([s] for s in samples if id(s) not in own and _usable(s, encoder) is None), [])
            if not kept:
                raise UserError(f"none of the {len(samples)} held-out samples of {source} can be encoded "
                                f"({', '.join(sorted(held.by_reason))}): check data.max_length, or name other "
                                "eval data with --data.eval")
        skips.merge({"seen": len(mine), "by_reason": dict(held.by_reason), "examples": dict(held.examples)},
                    check=False)
        self.samples = [kept[i % len(kept)] for i in range(per_rank)] if kept else []

    def __call__(self, epoch: int, shard: tuple[int, int]) -> Iterator[Sample]:
        return (_decoded(s, self.encoder) for s in self.samples)
