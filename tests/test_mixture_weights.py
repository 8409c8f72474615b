"""Mixture weights set each source's share of what training draws: sources that run out are read again until every
source has been read through once (datasets' "all_exhausted"); held-out data is read once; unnamed subsets never."""

from __future__ import annotations

import json
from collections import Counter

from test_data_sources import row, write_subset

from smvl.data.sources.mixing import weighted_interleave
from smvl.data.samples.sample import Sample
from smvl.data.sources import open_source


def chat_file(path, n, tag):
    path.write_text("".join(json.dumps({"id": f"{tag}{i}", "messages": [
        {"role": "user", "content": f"{tag} {i}?"}, {"role": "assistant", "content": "好"}]}) + "\n" for i in range(n)))
    return path


def test_a_small_source_weighted_ten_to_one_is_ten_elevenths_of_an_epoch(tmp_path):
    small, big = chat_file(tmp_path / "small.jsonl", 20, "s"), chat_file(tmp_path / "big.jsonl", 400, "b")
    drawn = list(open_source(f"{small}*10 + {big}*1", holdout=0, seed=3))
    counts = Counter(s.id[0] for s in drawn)
    assert counts["b"] == 400 and len({s.id for s in drawn if s.id[0] == "b"}) == 400  # the big one read once
    assert abs(counts["s"] / len(drawn) - 10 / 11) < 0.03, counts  # once each, it was 20 of 420
    held = list(open_source(f"{small}*10 + {big}*1", split="test", holdout=5, seed=3))
    assert sorted(s.id for s in held) == sorted([f"s{i}" for i in range(5)] + [f"b{i}" for i in range(5)])


def test_every_source_is_read_through_before_the_epoch_ends():
    def source(name, n):
        return lambda _pass: (Sample([], id=f"{name}{k}") for k in range(n))

    drawn = list(weighted_interleave({"a": source("a", 3), "b": source("b", 50), "c": source("c", 0)},
                                     {"a": 1, "b": 1, "c": 5}, seed=0))
    assert {s.id for s in drawn if s.id[0] == "b"} == {f"b{k}" for k in range(50)}
    assert Counter(s.id[0] for s in drawn)["a"] > 30  # 3 records, repeated to keep their share


def test_cauldron_subsets_weighted_by_name_repeat_and_unnamed_ones_are_never_read(tmp_path):
    root = tmp_path / "c"
    write_subset(root, "aaa", [row() for _ in range(6)])
    write_subset(root, "bbb", [row() for _ in range(60)])
    write_subset(root, "ccc", [row() for _ in range(30)])
    drawn = list(open_source(str(root), weights="aaa:1,bbb:1", holdout=0, seed=1, lazy=True))
    counts = Counter(s.source for s in drawn)
    assert "ccc" not in counts, counts  # left out of the weights: weight 0
    assert counts["bbb"] == 60 and 40 <= counts["aaa"] <= 80, counts
