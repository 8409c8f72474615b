"""Which records a reader keeps: the train/test split (hold-out by count or fraction), then this shard's share."""

from __future__ import annotations

import hashlib
import itertools


def in_split(key: str, index: int, split: str, holdout: float, seed: int) -> bool:
    """Hold-outs by count take the first `holdout` records; by fraction, a stable hash of (seed, key, index), so
    the split is the same whatever the order of reading."""
    if holdout >= 1:
        test = index < holdout
    else:
        digest = hashlib.blake2b(f"{seed}:{key}:{index}".encode(), digest_size=8).digest()
        test = int.from_bytes(digest, "big") / 2**64 < holdout
    return test == (split == "test")


class Selector:
    """Decides per record index, before the record is decoded: its split, then every n-th for the shard."""

    def __init__(self, key: str, split: str, holdout: float, seed: int, shard: tuple[int, int]):
        self.key, self.split, self.holdout, self.seed = key, split, holdout, seed
        self.position, self.stride = shard
        self.kept = itertools.count()

    def __call__(self, index: int) -> bool:
        return in_split(self.key, index, self.split, self.holdout, self.seed) and \
            next(self.kept) % self.stride == self.position

    def exhausted(self, index: int) -> bool:
        """A count hold-out's test split ends at record `holdout`: no need to read the rest of a 169 GB set."""
        return self.split == "test" and self.holdout >= 1 and index >= self.holdout

    def expected(self, records: int) -> float:
        """About how many of `records` this selector keeps (what mixing in proportion to size weighs by)."""
        if self.holdout >= 1:
            test = min(self.holdout, records)
        else:
            test = records * self.holdout
        return (test if self.split == "test" else records - test) / self.stride

    def share(self, rows: int) -> int:
        """How many of `rows` unread records, past a count hold-out's first records, this reader would have kept:
        what it loses with a file it cannot read. The shards' shares add up to the split's."""
        if self.holdout >= 1:
            kept = 0 if self.split == "test" else rows
        else:
            kept = round(rows * (self.holdout if self.split == "test" else 1 - self.holdout))
        return len(range(self.position, kept, self.stride))
