"""Counting skipped samples by reason, and stopping when too many are bad."""

from __future__ import annotations

from collections import Counter, defaultdict
from contextlib import contextmanager


class TooManySkipped(RuntimeError):
    pass


class SkipLog:
    """Records each skipped sample; `check()` raises once the skipped fraction exceeds `max_fraction` (of at least
    `min_seen` samples)."""

    def __init__(self, max_fraction: float = 0.05, min_seen: int = 200, keep_ids: int = 3):
        self.max_fraction = max_fraction
        self.min_seen = min_seen
        self.keep_ids = keep_ids
        self.seen = 0
        self.by_reason: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)
        self.notes: Counter[str] = Counter()  # kept samples that lost something (e.g. images under `images: first`)

    @property
    def skipped(self) -> int:
        return sum(self.by_reason.values())

    def ok(self) -> None:
        self.seen += 1

    def skip(self, sample_id: str, reason: str) -> None:
        self.seen += 1
        self.reject(sample_id, reason)

    def note(self, what: str, count: int = 1) -> None:
        """Something a kept sample lost, counted for the table; it never stops a run."""
        self.notes[what] += count

    def skip_many(self, what: str, reason: str, count: int) -> None:
        """`count` samples lost at once (an unreadable file's rows), under one example id."""
        if count <= 0:
            return
        self.seen += count
        self.by_reason[reason] += count - 1
        self.reject(what, reason)

    def reject(self, sample_id: str, reason: str) -> None:
        """A sample already counted as read (`ok`) is dropped at a later stage (encoding): counted once only."""
        self.by_reason[reason] += 1
        kept = self.examples[reason]
        if len(kept) < self.keep_ids and str(sample_id) not in kept:  # a stage re-reads its data from the start
            kept.append(str(sample_id))
        self.check()

    def check(self) -> None:
        # Before `min_seen` samples the bar is the fraction of `min_seen`: bad rows cluster (two corrupt images in
        # the first 36 is 5.6%), and a wreck (every image missing) still stops within the first few dozen.
        if self.skipped > self.max_fraction * max(self.seen, self.min_seen):
            raise TooManySkipped(
                f"{self.skipped} of {self.seen} samples skipped (over {self.max_fraction:.0%}); "
                f"refusing to go on with a broken data set.\n{self.table()}"
            )

    @contextmanager
    def paused(self):
        """Counts made inside are forgotten: for a look-ahead at samples that will be read (and counted) again."""
        saved = self.seen, Counter(self.by_reason), {k: list(v) for k, v in self.examples.items()}, Counter(self.notes)
        try:
            yield
        finally:
            self.seen, self.by_reason, self.notes = saved[0], saved[1], saved[3]
            self.examples = defaultdict(list, saved[2])

    def detach(self) -> None:
        """In a DataLoader worker (a copy of the main process's log): count from zero and never stop here; the
        counts travel to the main process with the batches (`drain` -> `merge`), which applies the stop to the
        whole run, not to each worker's share."""
        self.max_fraction = float("inf")
        self.seen = 0
        self.by_reason.clear()
        self.examples.clear()
        self.notes.clear()

    def drain(self) -> dict:
        """What was counted since the last drain, as plain data (it crosses process boundaries)."""
        delta = {"seen": self.seen, "by_reason": dict(self.by_reason),
                 "examples": {k: list(v) for k, v in self.examples.items()}, "notes": dict(self.notes)}
        self.detach()
        return delta

    def merge(self, delta: dict, check: bool = True) -> None:
        self.seen += delta["seen"]
        self.by_reason.update(delta["by_reason"])
        self.notes.update(delta.get("notes", {}))
        for reason, ids in delta["examples"].items():
            kept = self.examples[reason]
            kept.extend(ids[: self.keep_ids - len(kept)])
        if check:
            self.check()

    def table(self) -> str:
        if not self.by_reason:
            rows = [f"no samples skipped ({self.seen} seen)"]
        else:
            rows = [f"skipped {self.skipped} of {self.seen} samples:", f"  {'reason':<32} {'count':>7}  first ids"]
            for reason, n in self.by_reason.most_common():
                rows.append(f"  {reason:<32} {n:>7}  {', '.join(self.examples[reason])}")
        rows += [f"kept, but {what}: {n}" for what, n in self.notes.most_common()]
        return "\n".join(rows)
