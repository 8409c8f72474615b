"""The samples of a local the_cauldron folder, each with references to its images' places in the parquet files."""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from pathlib import Path

from smvl.data.samples.sample import Sample
from smvl.data.samples.skips import SkipLog
from smvl.data.sources.cauldron import cauldron_samples
from smvl.errors import UserError


class CauldronFolder:
    def __init__(self, root: str | Path, subsets: str = "all"):
        from smvl.data.sources import check_source
        from smvl.data.sources.cauldron import local_subsets

        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{root}: translate reads a local the_cauldron folder (<root>/<subset>/*.parquet), "
                            "and there is no such folder")
        check_source(str(self.root), subsets)
        self.subsets = local_subsets(self.root) if subsets == "all" else [
            s.strip() for s in subsets.split(",") if s.strip()]
        self._files: dict[str, tuple[list[Path], list[int]]] = {}
        self.unreadable: dict[Path, str] = {}  # file -> why its footer could not be read: its rows are left out
        if not any(self._layout(s)[0] for s in self.subsets):
            bad, why = next(iter(self.unreadable.items()))
            raise UserError(f"{root}: no parquet file of subset(s) {', '.join(self.subsets)} can be read "
                            f"({bad}: {why})")

    def _layout(self, subset: str) -> tuple[list[Path], list[int]]:
        """The subset's readable parquet files in reading order, and the subset row index each one starts at. A file
        whose footer cannot be read is left out, as the_cauldron reader leaves it out: it holds no row index."""
        if subset not in self._files:
            import pyarrow.parquet as pq

            files, starts = [], [0]
            for f in sorted((self.root / subset).glob("*.parquet")):
                try:
                    rows = pq.ParquetFile(f).metadata.num_rows
                except Exception as exc:  # noqa: BLE001 - as broad as the_cauldron reader's, or the indices part
                    self.unreadable[f] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"
                    continue
                files.append(f)
                starts.append(starts[-1] + rows)
            self._files[subset] = (files, starts)
        return self._files[subset]

    def size(self) -> int:
        return sum(self._layout(s)[1][-1] for s in self.subsets)

    def image_refs(self, subset: str, index: int, count: int, relative_to: Path | None = None) -> list[dict]:
        """References to the row's images; with `relative_to` (the folder the JSONL is written in) their paths are
        relative to it, as the JSONL reader resolves them, so the JSONL and the_cauldron can be moved or copied
        together to another place or machine."""
        files, starts = self._layout(subset)
        k = bisect.bisect_right(starts, index) - 1
        path = str(files[k].resolve())
        if relative_to is not None:
            try:
                path = os.path.relpath(path, Path(relative_to).resolve())
            except ValueError:  # Windows, another drive: no relative path exists, so the absolute one it is
                pass
        return [{"parquet": path, "row": index - starts[k], "index": i} for i in range(count)]

    def samples(self, limit: int | None, skips: SkipLog) -> Iterator[Sample]:
        """Every row of the chosen subsets, interleaved in proportion to their sizes as training reads them; images
        stay undecoded (only their places are written)."""
        return cauldron_samples(self.root, ",".join(self.subsets), "train", 0, None, 0, limit, True, skips,
                                lazy=True)
