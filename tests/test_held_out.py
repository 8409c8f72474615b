"""Evaluation on held-out samples the encoder partly rejects: no crash at the first evaluation, the same batch count
on every rank (a rank with fewer batches would hang the loss gather), rejections in the run's skip table, and
held-out images kept undecoded between evaluations."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from transformers import AutoProcessor

from smvl.data.batches.collate import CollateOptions, Encoder
from smvl.data.samples.lazy import ImageRef
from smvl.data.samples.sample import Sample
from smvl.data.samples.skips import SkipLog
from smvl.data.batches.stream import BatchStream
from smvl.errors import UserError
from smvl.train.held_out import HeldOut
from smvl.train.run import load_config

MAX_LENGTH = 64


def text(sid, long=False):
    question = "长" * 300 if long else f"问题{sid}"  # 300 tokens: over max_length, so the encoder rejects it
    return Sample([{"role": "user", "content": [{"type": "text", "text": question}]},
                   {"role": "assistant", "content": "好"}], id=sid)


@pytest.fixture(scope="module")
def encoder(tiny_model):
    return Encoder(AutoProcessor.from_pretrained(tiny_model), CollateOptions(max_length=MAX_LENGTH))


def batches(held_out, encoder):
    stream = BatchStream(held_out, encoder, 4, encoder.options, group_by_length=False, epochs=1)
    return list(stream)


def test_ranks_with_uneven_rejections_run_the_same_number_of_eval_batches(encoder):
    # Rank 0's share (even positions) loses 15 of its 20 samples, rank 1's none: 15 rejections would have stopped
    # a fresh skip log ("15 of 0 samples skipped") and left rank 0 with 2 batches against rank 1's 5.
    samples = [text(f"s{i}", long=i % 2 == 0 and i < 30) for i in range(40)]
    logs = [SkipLog(), SkipLog()]
    held = [HeldOut(samples, encoder, rank, 2, logs[rank]) for rank in range(2)]
    counts = [len(batches(h, encoder)) for h in held]
    assert counts == [5, 5]
    assert logs[0].by_reason == {"too long for max_length": 15} and not logs[1].by_reason
    assert logs[0].seen == logs[1].seen == 20  # each rank counts its own share as read
    assert all(s.id in {f"s{i}" for i in range(30, 40, 2)} for s in held[0].samples)  # only what encodes


def test_a_rank_whose_whole_share_is_rejected_borrows_and_none_at_all_is_one_line(encoder):
    samples = [text("a", long=True), text("b")]
    assert [s.id for s in HeldOut(samples, encoder, 0, 2, SkipLog()).samples] == ["b"]
    with pytest.raises(UserError, match="none of the 2 held-out samples of x.jsonl can be encoded"):
        HeldOut([text("a", long=True)] * 2, encoder, 0, 1, SkipLog(), "x.jsonl")


def test_held_out_images_stay_undecoded_between_evaluations(encoder, tmp_path):
    path = tmp_path / "scan.png"
    Image.new("RGB", (40, 30), (9, 9, 9)).save(path)
    sample = Sample([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "图？"}]},
                     {"role": "assistant", "content": "好"}], images=[ImageRef(str(path))], id="img")
    held = HeldOut([sample], encoder, 0, 1, SkipLog())
    given = [s.images[0] for s in held(0, (0, 1))]
    assert isinstance(given[0], Image.Image) and isinstance(held.samples[0].images[0], ImageRef)
    assert len(batches(held, encoder)) == 1 and isinstance(held.samples[0].images[0], ImageRef)


def chat_file(path, n, long_every=0):
    lines = []
    for i in range(n):
        question = "长" * 300 if long_every and i % long_every == 0 else f"问题{i}"
        lines.append(json.dumps({"id": f"r{i}", "messages": [{"role": "user", "content": question},
                                                              {"role": "assistant", "content": "好"}]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_first_evaluation_survives_rejected_held_out_samples_and_counts_them(tiny_model, tmp_path):
    from smvl.train.data import build_streams

    data = chat_file(tmp_path / "d.jsonl", 120, long_every=3)  # held out: r0..r47, 16 of them too long
    cfg = load_config(None, ["--data.train", str(data), "--data.holdout", "48", "--data.max_length",
                             str(MAX_LENGTH), "--batch_size", "4", "--output_dir", str(tmp_path / "run")])
    streams, skips = build_streams(cfg, AutoProcessor.from_pretrained(tiny_model))
    assert sum(b["cu_seq_lens_q"].numel() - 1 for b in streams.eval) == 48  # padded with repeats, as ranks are
    assert len({s.id for s in streams.eval.samples.samples}) == 32
    assert skips.by_reason["too long for max_length"] == 16 and skips.seen == 48


def test_a_source_the_hold_out_takes_whole_is_one_line_before_the_splice(tmp_path, capsys):
    from smvl.cli import main

    data = chat_file(tmp_path / "first.jsonl", 56)
    assert main(["train", "--data.train", str(data), "--output_dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "first.jsonl: all 56 usable records are held out" in err and "data.train" in err and "--data.holdout" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "run" / "spliced").exists()


class Accepting:
    """An encoder that takes every sample."""

    decode_size = sampling = None

    def __call__(self, sample):
        return sample


def test_held_out_set_is_shared_out_over_ranks_in_equal_counts():
    samples = [text(str(i)) for i in range(7)]
    shares = [[s.id for s in HeldOut(samples, Accepting(), rank, 3, SkipLog())(0, (0, 1))] for rank in range(3)]
    assert shares == [["0", "3", "6"], ["1", "4", "1"], ["2", "5", "2"]]  # short shards repeat their own samples
    assert [s.id for s in HeldOut(samples[:1], Accepting(), 1, 2, SkipLog()).samples] == ["0"]  # none: borrows
