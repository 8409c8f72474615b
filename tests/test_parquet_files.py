"""A the_cauldron subset read file by file: a damaged file costs only its own rows (counted, so the skip guard
sees them), and a reader converts to Python objects only the rows of its own split and shard."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from test_data_sources import row, write_subset

from smvl.data.samples.skips import SkipLog, TooManySkipped
from smvl.data.sources import open_source


def damaged(tmp_path, files=3, rows=30):
    root = tmp_path / "c"
    write_subset(root, "cocoqa", [row(answer=f"a{i}") for i in range(rows)], files=files)
    middle = sorted((root / "cocoqa").glob("*.parquet"))[1]
    middle.write_bytes(middle.read_bytes()[: middle.stat().st_size // 2])  # a download cut short
    return root


def test_a_truncated_file_mid_subset_skips_its_rows_and_the_subset_goes_on(tmp_path):
    root = damaged(tmp_path)
    skips = SkipLog(max_fraction=1.0)
    answers = [s.messages[-1]["content"] for s in open_source(str(root), holdout=0, skips=skips, lazy=True)]
    assert sorted(answers, key=lambda a: int(a[1:])) == [f"a{i}" for i in list(range(10)) + list(range(20, 30))]
    assert skips.by_reason == {"unreadable parquet file": 10}  # its rows, estimated from its size
    assert skips.seen == 30 and "cocoqa/train-00001.parquet" in skips.examples["unreadable parquet file"][0]


def test_a_truncated_file_counts_enough_rows_to_trip_the_skip_guard(tmp_path):
    root = damaged(tmp_path, rows=300)
    with pytest.raises(TooManySkipped, match="100 of"):
        list(open_source(str(root), holdout=0, skips=SkipLog(), lazy=True))


def test_two_shards_count_the_lost_rows_once_between_them(tmp_path):
    root = damaged(tmp_path)
    logs = [SkipLog(max_fraction=1.0) for _ in range(2)]
    for k, log in enumerate(logs):
        list(open_source(str(root), holdout=0, skips=log, shard=(k, 2), lazy=True))
    assert sum(log.by_reason["unreadable parquet file"] for log in logs) == 10


def test_only_this_readers_rows_become_python_objects(tmp_path, monkeypatch):
    root = tmp_path / "c"
    write_subset(root, "cocoqa", [row() for _ in range(64)], files=2)
    converted = []

    class Batch:  # a record batch that counts the rows turned into Python objects
        def __init__(self, batch):
            self.batch, self.num_rows = batch, batch.num_rows

        def take(self, indices):
            return Batch(self.batch.take(indices))

        def to_pylist(self):
            converted.append(self.num_rows)
            return self.batch.to_pylist()

    real = pq.ParquetFile.iter_batches
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", lambda self, **kw: map(Batch, real(self, **kw)))
    samples = list(open_source(str(root), holdout=4, skips=SkipLog(), shard=(1, 4), lazy=True))
    assert len(samples) == 15 and sum(converted) == 15  # (64 - 4 held out) / 4 shards
