"""CPU seconds spent per pipeline stage (read, decode, resize/tile, tokenise, collate), for `smvl data inspect
--bench`. CPU time of the process (the bench runs torch on one thread, as in a DataLoader worker), not wall time:
on a shared machine the wall clock also counts other programs' turns on the cores.

Stages nest: time spent in an inner stage is not counted again in the outer one, so the encoder can time all of
itself as "tokenise" and its image call as "resize/tile" and the two add up to the encoder's time.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager


class StageTimer:
    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self._inner: list[float] = []  # per open stage, seconds its finished inner stages took

    @contextmanager
    def stage(self, name: str):
        start = time.process_time()
        self._inner.append(0.0)
        try:
            yield
        finally:
            took = time.process_time() - start
            inner = self._inner.pop()
            self.seconds[name] += took - inner
            if self._inner:
                self._inner[-1] += took

    def total(self) -> float:
        return sum(self.seconds.values())

    def table(self, samples: int, order: tuple[str, ...] = ()) -> list[str]:
        """One line per stage: ms per sample and share of the timed total."""
        total = self.total() or 1.0
        names = [n for n in order if n in self.seconds] + sorted(set(self.seconds) - set(order))
        return [f"  {n:<12} {1000 * self.seconds[n] / max(samples, 1):8.1f} CPU ms/sample {self.seconds[n] / total:6.1%}"
                for n in names]
