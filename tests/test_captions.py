"""Caption sources: a folder of images with a caption file, WebDataset tar shards (streamed), the Chinese caption
prompts, sharding over ranks x workers, bad input counted, and a stage that trains on captions."""

from __future__ import annotations

import csv
import io
import json
import tarfile
import tracemalloc
from collections import Counter

import pytest
import yaml

from caption_data import add, caption, jpeg, write_caption_folder, write_shards
from smvl.cli import main
from smvl.data.sources import lines
from smvl.data.sources.captions import prompts
from smvl.data.samples.skips import SkipLog
from smvl.data.sources import open_source
from smvl.data.sources.webdataset import expand_braces
from smvl.errors import UserError


def answers(samples) -> list[str]:
    return [s.messages[1]["content"] for s in samples]


def test_the_shipped_prompt_list_is_chinese_and_about_twenty():
    shipped = prompts()
    assert 15 <= len(shipped) <= 30 and "用一句话描述这张图片。" in shipped and len(set(shipped)) == len(shipped)


@pytest.mark.parametrize("fmt, header", [("jsonl", ("image", "caption")), ("csv", ("image", "caption")),
                                         ("tsv", ("file_name", "text")), ("csv", ("File_Name", "Text"))])
def test_caption_folder_becomes_one_turn_samples_with_prompts_from_the_list(tmp_path, fmt, header):
    folder = write_caption_folder(tmp_path / "caps", n=12, fmt=fmt, header=header)
    samples = list(open_source(str(folder), holdout=0, seed=3))
    assert answers(samples) == [caption(i) for i in range(12)]
    for s in samples:
        user, assistant = s.messages
        assert user["role"] == "user" and user["content"][0] == {"type": "image"}
        assert user["content"][1]["text"] in prompts() and assistant["role"] == "assistant"
        assert len(s.images) == 1 and s.images[0].size == (48, 40)
    drawn = [s.messages[0]["content"][1]["text"] for s in samples]
    assert len(set(drawn)) > 3  # drawn, not one fixed prompt
    again = [s.messages[0]["content"][1]["text"] for s in open_source(str(folder), holdout=0, seed=3)]
    other = [s.messages[0]["content"][1]["text"] for s in open_source(str(folder), holdout=0, seed=4)]
    assert again == drawn and other != drawn


def test_a_caption_file_named_directly_and_the_hold_out(tmp_path):
    folder = write_caption_folder(tmp_path / "caps", n=10, fmt="csv")
    test = answers(open_source(str(folder / "captions.csv"), "test", holdout=3))
    train = answers(open_source(str(folder), "train", holdout=3))
    assert test == [caption(i) for i in range(3)] and train == [caption(i) for i in range(3, 10)]


def test_bad_caption_records_are_counted_not_fatal(tmp_path):
    folder = write_caption_folder(tmp_path / "caps", n=40)
    lines = (folder / "captions.jsonl").read_text(encoding="utf-8").splitlines()
    lines += ['{"image": "gone.jpg", "caption": "不存在"}', '{"image": "/dev/zero", "caption": "设备"}',
              '{"image": "img0.jpg"}', '{"image": "img0.jpg", "caption": "  "}', "not json"]
    (folder / "captions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    skips = SkipLog(max_fraction=1.0)
    assert len(list(open_source(str(folder), holdout=0, skips=skips))) == 40
    assert dict(skips.by_reason) == {"missing image file": 1, "not a regular file": 1, "missing caption": 1,
                                     "empty answer": 1, "invalid JSON": 1}


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_a_quoted_caption_may_span_lines(tmp_path, fmt, monkeypatch):
    """A caption with line breaks is one quoted field over several lines: read whole, and the records after it are
    still records (ids name the line each starts on); an over-long line and a row of bad bytes are still skipped on
    their own."""
    monkeypatch.setattr(lines, "MAX_RECORD_BYTES", 4096)
    folder = write_caption_folder(tmp_path / "caps", n=4, fmt=fmt)
    texts = ["第一行\n第二行", caption(1), '他说："好"，\n\n然后\t离开, 了。', caption(3)]
    with open(folder / f"captions.{fmt}", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t" if fmt == "tsv" else ",")
        writer.writerow(("image", "caption"))
        writer.writerows((f"img{i}.jpg", text) for i, text in enumerate(texts))
    with open(folder / f"captions.{fmt}", "ab") as f:
        f.write(b"img0.jpg" + (b"\t" if fmt == "tsv" else b",") + b"x" * 5000 + b"\n")
        f.write(b"img0.jpg" + (b"\t" if fmt == "tsv" else b",") + b"\xff\xfe\n")
    skips = SkipLog(max_fraction=1.0)
    samples = list(open_source(str(folder), holdout=0, skips=skips))
    assert answers(samples) == texts
    assert [s.id for s in samples] == [f"captions.{fmt}:{n}" for n in (2, 4, 5, 8)]
    assert dict(skips.by_reason) == {"line too long": 1, "invalid UTF-8": 1}


def test_a_csv_without_the_needed_columns_is_one_line_exit_2(tmp_path, capsys):
    folder = write_caption_folder(tmp_path / "caps", n=2, fmt="csv", header=("picture", "caption"))
    assert main(["data", "inspect", str(folder), "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "captions.csv: the header row needs an image column (image or file_name)" in err and err.count("\n") == 1
    write_caption_folder(tmp_path / "caps", n=2, fmt="tsv")
    with pytest.raises(UserError, match="holds captions.csv and captions.tsv: keep one"):
        list(open_source(str(folder)))


def test_brace_lists_expand_with_their_zero_padding():
    assert expand_braces("s/{000008..000011}.tar") == [f"s/{i:06d}.tar" for i in range(8, 12)]
    assert expand_braces("{a,b}/{0..1}.tar") == ["a/0.tar", "a/1.tar", "b/0.tar", "b/1.tar"]
    with pytest.raises(UserError):
        expand_braces("s/{9..1}.tar")


@pytest.mark.parametrize("spec", ["{root}/{{000000..000002}}.tar", "{root}/*.tar", "{root}"])
def test_webdataset_shards_become_samples_in_order(tmp_path, spec):
    write_shards(tmp_path / "shards", shards=3, per_shard=4)
    samples = list(open_source(spec.format(root=tmp_path / "shards"), holdout=0, seed=1))
    assert answers(samples) == [caption(i) for i in range(12)]  # .txt and .json captions alike
    assert samples[0].id == "000000.tar:s0-000" and all(s.messages[0]["content"][1]["text"] in prompts()
                                                        for s in samples)


def test_a_named_shard_that_does_not_exist_is_one_line_exit_2(tmp_path, capsys):
    write_shards(tmp_path / "shards", shards=2)
    assert main(["data", "inspect", str(tmp_path / "shards" / "{000000..000002}.tar"), "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "shard " in err and "000002.tar does not exist" in err and err.count("\n") == 1


def test_unpaired_keys_bad_members_and_broken_shards_are_counted(tmp_path):
    folder = tmp_path / "shards"
    write_shards(folder, shards=1, per_shard=30)
    with tarfile.open(folder / "000001.tar", "w") as tar:
        add(tar, "lonely.jpg", jpeg(0))  # no caption
        add(tar, "mute.txt", "没有图片".encode())  # no image
        add(tar, "bad.jpg", b"\xff\xd8\xff not a jpeg")
        add(tar, "bad.txt", "坏图".encode())
        add(tar, "badtext.jpg", jpeg(1))
        add(tar, "badtext.txt", b"\xff\xfe")
        link = tarfile.TarInfo("link.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/dev/zero"
        tar.addfile(link)
        add(tar, "link.txt", "链接".encode())
        add(tar, "ok.jpg", jpeg(2))
        add(tar, "ok.txt", "好的".encode())
    with tarfile.open(folder / "000001.tar") as tar:
        cut = tar.getmember("ok.jpg").offset_data + 100
    (folder / "000002.tar").write_bytes((folder / "000001.tar").read_bytes()[:cut])  # breaks off inside ok.jpg
    (folder / "000003.tar").write_bytes(b"not a tar at all" * 100)
    skips = SkipLog(max_fraction=1.0)
    samples = list(open_source(str(folder), holdout=0, skips=skips))
    assert answers(samples)[-1] == "好的" and len(samples) == 30 + 1
    assert skips.by_reason == Counter({"unpaired key": 4, "corrupt image": 2, "invalid UTF-8": 2,
                                       "not a regular file": 2, "shard failed to read": 2})


def test_a_shard_that_is_a_fifo_or_a_device_is_skipped_never_read(tmp_path):
    """A FIFO would block a plain open forever and /dev/zero would never end."""
    import os

    folder = tmp_path / "shards"
    write_shards(folder, shards=1, per_shard=40)
    os.mkfifo(folder / "000001.tar")
    (folder / "000002.tar").symlink_to("/dev/zero")
    skips = SkipLog(max_fraction=1.0)
    assert len(list(open_source(str(folder), holdout=0, skips=skips))) == 40
    assert dict(skips.by_reason) == {"not a regular file": 2}


def test_a_huge_shard_is_streamed_not_read_whole(tmp_path):
    """A 96 MB member nobody asked for and a 2 MB caption sit in the shard: samples come out, and peak memory
    stays far below the shard's size."""
    path = tmp_path / "shards" / "000000.tar"
    path.parent.mkdir()
    with tarfile.open(path, "w") as tar:
        add(tar, "a.jpg", jpeg(0))
        add(tar, "a.txt", "第一张".encode())
        big = tarfile.TarInfo("a.npy")
        big.size = 96 * 2**20
        tar.addfile(big, io.BytesIO(bytes(big.size)))
        add(tar, "b.jpg", jpeg(1))
        add(tar, "b.txt", ("长" * 2**20).encode())
        add(tar, "c.jpg", jpeg(2))
        add(tar, "c.txt", "第三张".encode())
    skips = SkipLog(max_fraction=1.0)
    tracemalloc.start()
    try:
        samples = list(open_source(str(path), holdout=0, skips=skips))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answers(samples) == ["第一张", "第三张"] and dict(skips.by_reason) == {"caption too large": 1}
    assert peak < 8 * 2**20, f"{peak:,} bytes"


@pytest.mark.parametrize("kind", ["folder", "few shards", "many shards"])
def test_two_ranks_by_two_workers_read_every_sample_once(tmp_path, kind):
    """Four readers: a caption folder by record index, 3 shards (< 4 readers) by sample index, 8 shards by file."""
    if kind == "folder":
        spec, n = str(write_caption_folder(tmp_path / "caps", n=22)), 22
    else:
        files = 3 if kind == "few shards" else 8
        write_shards(tmp_path / "shards", shards=files, per_shard=5)
        spec, n = str(tmp_path / "shards"), files * 5
    for holdout in (0, 4, 0.25):
        test = answers(open_source(spec, "test", holdout=holdout, seed=2))
        shares = [answers(open_source(spec, "train", holdout=holdout, seed=2, shard=(k, 4))) for k in range(4)]
        everything = test + [a for share in shares for a in share]
        assert sorted(everything) == sorted(caption(i) for i in range(n)), (holdout, shares)
        assert all(shares), shares


def test_data_inspect_shows_a_caption_sample_from_a_folder_and_from_shards(tmp_path, capsys):
    folder = write_caption_folder(tmp_path / "caps", n=4)
    write_shards(tmp_path / "shards", shards=2, per_shard=2)
    for spec in (str(folder), str(tmp_path / "shards" / "{000000..000001}.tar")):
        assert main(["data", "inspect", spec, "--preset", "tiny", "--limit", "4"]) == 0
        out = capsys.readouterr().out
        assert "samples read: 4" in out and "no samples skipped" in out
        assert any(p in out for p in prompts()) and "【一块红色的方块，编号0。" in out


def test_a_stage_trains_on_captions_then_on_another_source(tmp_path, capsys):
    """`smvl train` on the tiny preset: stage 1 (connector) on a caption folder, stage 2 on WebDataset shards mixed
    with the synthetic set; both are evaluated on the mixture's held-out part."""
    folder = write_caption_folder(tmp_path / "caps", n=16, fmt="tsv")
    header, *rows = (folder / "captions.tsv").read_text(encoding="utf-8").splitlines()
    # The bad row's skip in the run's table proves that stage 1 read the folder; its 9 steps of 2 read all 17 rows.
    (folder / "captions.tsv").write_text("\n".join([header, "gone.jpg\t坏行", *rows]) + "\n", encoding="utf-8")
    write_shards(tmp_path / "shards", shards=2, per_shard=6)
    config = tmp_path / "captions.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"train": f"synthetic*1 + {tmp_path / 'shards'}/{{000000..000001}}.tar*2", "max_samples": 8,
                 "holdout": 2, "shuffle_buffer": 8},
        "stages": [{"recipe": "connector", "lr": 1e-3, "steps": 9, "train": str(folder)},
                   {"recipe": "full", "lr": 1e-3, "steps": 2}],
        "batch_size": 2, "log_every": 1, "eval_every": 2, "save_every": 2, "final_eval": False,
        "output_dir": str(tmp_path / "run")}))
    assert main(["train", str(config)]) == 0
    final, out = tmp_path / "run" / "final", capsys.readouterr().out
    assert f"trains on {folder}" in out and (final / "model.safetensors").is_file()
    assert "missing image file" in out and "captions.tsv:2" in out
    provenance = json.loads((final / "smvl.json").read_text())
    assert [s["recipe"] for s in provenance["stages"]] == ["connector", "full"]
    mixture = yaml.safe_load(config.read_text())["data"]["train"]
    assert [s["train"] for s in provenance["stages"]] == [str(folder), mixture]  # what each stage trained on


def test_a_missing_stage_source_fails_before_any_splice(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"stages": [{"recipe": "connector", "steps": 1, "train": str(tmp_path / "no")}],
                                      "output_dir": str(tmp_path / "run")}))
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "stage 1 train:" in err and err.count("\n") == 1 and not (tmp_path / "run" / "spliced").exists()
