"""WebDataset shards that do not divide among the readers: every reader gets the same share of samples, each sample
goes to exactly one reader, and a reader opens its whole shards plus at most two shared ones."""

from __future__ import annotations

import pytest

from caption_data import caption, write_shards
from smvl.data.sources import webdataset
from smvl.data.sources import open_source


def shares(spec: str, readers: int, **options) -> list[list[str]]:
    return [[s.messages[1]["content"] for s in open_source(spec, holdout=0, seed=1, shard=(k, readers), **options)]
            for k in range(readers)]


@pytest.mark.parametrize("files, readers", [(3, 2), (5, 3), (2, 3), (10, 4)])
def test_every_reader_gets_the_same_number_of_samples(tmp_path, files, readers):
    write_shards(tmp_path / "shards", shards=files, per_shard=12)
    got = shares(str(tmp_path / "shards"), readers)
    assert [len(share) for share in got] == [files * 12 // readers] * readers
    assert sorted(a for share in got for a in share) == sorted(caption(i) for i in range(files * 12))


def test_a_reader_opens_its_whole_shards_and_at_most_two_shared_ones(tmp_path, monkeypatch):
    write_shards(tmp_path / "shards", shards=11, per_shard=8)  # 8 readers: 8 shards whole, 3 shared by sample
    opened = []
    real = webdataset._open_shard
    monkeypatch.setattr(webdataset, "_open_shard", lambda path: opened.append(path.name) or real(path))
    for k in range(8):
        opened.clear()
        share = list(open_source(str(tmp_path / "shards"), holdout=0, shard=(k, 8)))
        assert len(share) == 11 and f"{k:06d}.tar" in opened and len(opened) <= 3, (k, opened)
