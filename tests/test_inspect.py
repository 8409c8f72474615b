"""`smvl data inspect`: the realised share of each source in a mixture, images `first` leaves out, and the built-in
sets inspected offline."""

from __future__ import annotations

import json
from collections import Counter

from PIL import Image

from smvl.cli import main
from smvl.data.sources import open_source


def write_chat(path, rows: int, word: str, images: int = 0) -> None:
    for k in range(images):
        Image.new("RGB", (16, 12), (40 * k, 10, 10)).save(path.parent / f"{word}{k}.png")
    records = [{"id": f"{word}{i}", "images": [f"{word}{k}.png" for k in range(images)],
                "messages": [{"role": "user", "content": "<image>" * images + f"{word}{i}是什么？"},
                             {"role": "assistant", "content": word}]} for i in range(rows)]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records))


def shares(out: str) -> dict[str, int]:
    table = out.split("samples drawn per source:\n")[1].split("\n\n")[0].splitlines()[1:]
    return {cells[0]: int(cells[1]) for cells in (line.split() for line in table)}


def test_data_inspect_shows_each_sources_realised_share_of_a_weighted_mixture(tmp_path, capsys):
    write_chat(tmp_path / "a.jsonl", 120, "甲")
    write_chat(tmp_path / "b.jsonl", 120, "乙")
    spec = f"{tmp_path / 'a.jsonl'}*10 + {tmp_path / 'b.jsonl'}*1"
    assert main(["data", "inspect", spec, "--preset", "tiny", "--limit", "110"]) == 0
    drawn = shares(capsys.readouterr().out)
    expected = Counter(s.source for s in open_source(spec, max_samples=110, holdout=0))
    assert drawn == dict(expected) and sum(drawn.values()) == 110
    assert 0.8 < drawn["file:a.jsonl"] / 110 < 0.98  # asked for 10/11 = 91%


def test_data_inspect_says_how_many_images_images_first_leaves_out(tmp_path, capsys):
    write_chat(tmp_path / "multi.jsonl", 3, "多", images=3)
    write_chat(tmp_path / "one.jsonl", 2, "单", images=1)
    spec = f"{tmp_path / 'multi.jsonl'} + {tmp_path / 'one.jsonl'}"
    assert main(["data", "inspect", spec, "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    multi = shares(out)["file:multi.jsonl"]  # as drawn (a mixture may repeat a source)
    assert f"images: first (training's default) keeps one image: {multi} multi-image samples lose {2 * multi} " \
           "images" in out


def test_data_inspect_of_the_synthetic_video_set_runs_offline_with_the_tiny_preset(capsys):
    assert main(["data", "inspect", "synthetic-video", "--limit", "2"]) == 0  # the hub is unreachable here
    out = capsys.readouterr().out
    assert out.startswith("== figures for the processor of preset tiny") and "samples read: 2" in out
