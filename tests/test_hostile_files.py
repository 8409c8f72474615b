"""Hostile data files through `smvl data inspect`, training's reader and `smvl infer`: FIFOs and devices as image
paths, over-long lines and records, bad bytes, byte order marks, ids of different types. Each must be skipped and
counted (or read correctly), quickly and in bounded memory."""

from __future__ import annotations

import codecs
import json
import os
import threading
import time
import tracemalloc

import pytest
from PIL import Image

from smvl.cli import main
from smvl.data.samples.skips import SkipLog
from smvl.data.sources import lines, open_source

from test_data_sources import image_bytes, write_subset

ANSWER = [{"role": "assistant", "content": "红色"}]


def record(image, **extra):
    return {"images": [image], "messages": [{"role": "user", "content": "<image>什么颜色？"}, *ANSWER], **extra}


def unblock_later(fifo, seconds=20.0):
    """Should a reader wait on `fifo` for a writer (the bug), give it one after `seconds` so the test ends and fails
    on its assertions instead of hanging."""

    def run():
        time.sleep(seconds)
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # succeeds only while a reader is waiting
        except OSError:
            return
        os.close(fd)

    threading.Thread(target=run, daemon=True).start()


@pytest.fixture()
def fifo(tmp_path):
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    unblock_later(path)
    return path


def test_fifo_and_device_image_paths_are_skipped_by_data_inspect(tmp_path, fifo, capsys):
    (tmp_path / "ok.png").write_bytes(image_bytes())
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in (record("ok.png"), record("pipe.png"), record("/dev/zero"))))
    start = time.monotonic()
    assert main(["data", "inspect", str(data), "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "samples read: 1" in out and "not a regular file                     2" in out, out
    assert time.monotonic() - start < 20

    root = tmp_path / "cauldron"
    rows = [{"images": [{"bytes": None, "path": str(p)}], "texts": [{"user": "q", "assistant": "a", "source": "s"}]}
            for p in (tmp_path / "ok.png", fifo, "/dev/zero")]
    write_subset(root, "cocoqa", rows)
    skips = SkipLog(max_fraction=1.0)
    assert len(list(open_source(str(root), holdout=0, skips=skips))) == 1
    assert skips.by_reason == {"not a regular file": 2}


def test_training_reader_skips_a_fifo_after_its_shuffle_buffer(tiny_model, tmp_path, fifo, monkeypatch):
    """The reader `train` uses decodes after the shuffle buffer, in the batch stream: a FIFO is still a counted
    skip, not a hang."""
    from transformers import AutoProcessor

    from smvl.data.batches.collate import Encoder
    from smvl.train.data import collate_options, train_stream
    from smvl.train.run import load_config

    (tmp_path / "ok.png").write_bytes(image_bytes())
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(record(name)) for name in ["ok.png"] * 5 + ["pipe.png"]))
    cfg = load_config(None, ["--data.train", str(data), "--data.holdout", "0", "--data.packing", "false",
                             "--batch_size", "1", "--output_dir", str(tmp_path / "r")])
    skips = SkipLog(max_fraction=1.0)
    stream = train_stream(cfg, Encoder(AutoProcessor.from_pretrained(tiny_model), collate_options(cfg)), skips)
    stream.epochs = 1
    assert len(list(stream)) == 5
    assert skips.by_reason == {"not a regular file": 1} and skips.seen == 6


def test_overlong_lines_bad_bytes_and_a_bom_through_data_inspect(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lines, "MAX_RECORD_BYTES", 2**20)
    (tmp_path / "ok.png").write_bytes(image_bytes())
    good = json.dumps(record("ok.png"), ensure_ascii=False).encode()
    huge = json.dumps(record("ok.png", pad="x" * 3 * 2**20)).encode()
    bad_bytes = good.replace("红色".encode(), b"\xff\xfe")
    data = tmp_path / "d.jsonl"
    data.write_bytes(codecs.BOM_UTF8 + b"\n".join([good, huge, good, bad_bytes, good]) + b"\n")
    assert main(["data", "inspect", str(data), "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "samples read: 3" in out and "skipped 2 of 5" in out, out
    assert "line too long" in out and "d.jsonl:2" in out and "invalid UTF-8" in out and "d.jsonl:4" in out

    llava = tmp_path / "l.json"
    entry = {"image": "ok.png", "conversations": [{"from": "human", "value": "<image>什么颜色？"},
                                                  {"from": "gpt", "value": "红色"}]}
    body = [json.dumps(entry, ensure_ascii=False).encode()] * 2
    body.insert(1, json.dumps({**entry, "pad": "x" * 3 * 2**20}).encode())
    body.append(json.dumps(entry, ensure_ascii=False).encode().replace("红色".encode(), b"\xc3("))
    llava.write_bytes(codecs.BOM_UTF8 + b"[" + b",\n".join(body) + b"]")
    skips = SkipLog(max_fraction=1.0)
    assert [s.id for s in open_source(str(llava), holdout=0, skips=skips)] == ["l.json:0", "l.json:2"]
    assert skips.by_reason == {"record too long": 1, "invalid UTF-8": 1}


def peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reading_stays_bounded_in_memory(tmp_path, monkeypatch):
    """A 24 MB line with a 1 MB bound, and a 16 MB `.json` list: neither file is ever held whole."""
    monkeypatch.setattr(lines, "MAX_RECORD_BYTES", 2**20)
    text = [{"role": "user", "content": "问"}, *ANSWER]
    data = tmp_path / "d.jsonl"
    with open(data, "w") as f:
        f.write(json.dumps({"messages": text}) + "\n")
        f.write(json.dumps({"messages": text, "pad": "x" * 24 * 2**20}) + "\n")
        f.write(json.dumps({"messages": text}) + "\n")
    skips = SkipLog(max_fraction=1.0)
    peak = peak_bytes(lambda: list(open_source(str(data), holdout=0, skips=skips)))
    assert skips.by_reason == {"line too long": 1} and skips.seen == 3
    assert peak < 8 * 2**20, f"{peak:,} bytes"

    llava = tmp_path / "l.json"
    llava.write_text(json.dumps([{"conversations": [{"from": "human", "value": "问"},
                                                    {"from": "gpt", "value": "答" * 6000}]}] * 900))
    assert llava.stat().st_size > 16 * 10**6
    count = []
    peak = peak_bytes(lambda: count.append(sum(1 for _ in open_source(str(llava), holdout=0))))
    assert count == [900]
    assert peak < 8 * 2**20, f"{peak:,} bytes"


def test_infer_keeps_id_types_apart_and_skips_hostile_lines(tiny_model, tmp_path, fifo, monkeypatch, capsys):
    monkeypatch.setattr(lines, "MAX_RECORD_BYTES", 2**20)
    Image.new("RGB", (40, 30), (0, 200, 0)).save(tmp_path / "g.png")
    rows = [{"id": 1, "question": "一？"}, {"id": "1", "question": "二？"},
            {"id": "pipe", "question": "?", "image": "pipe.png"}, {"id": "zero", "question": "?", "image": "/dev/zero"},
            {"id": "img", "question": "颜色？", "image": "g.png"}]
    encoded = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    encoded += [b'{"id": "bad", "question": "\xff"}', json.dumps({"id": "huge", "question": "x" * 2**21}).encode()]
    source = tmp_path / "q.jsonl"
    source.write_bytes(codecs.BOM_UTF8 + b"\n".join(encoded) + b"\n")
    out = tmp_path / "a.jsonl"
    args = ["infer", str(tiny_model), "--input", str(source), "--output", str(out), "--batch-size", "2",
            "--max-new-tokens", "2", "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "answered 3 question(s)" in printed and "4 skipped" in printed, printed
    for reason in ("not a regular file", "invalid UTF-8", "line too long"):
        assert reason in printed, reason
    ids = [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(ids, key=repr) == sorted([1, "1", "img"], key=repr)
    assert main(args) == 0
    assert "answered 0 question(s)" in capsys.readouterr().out
