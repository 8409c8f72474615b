"""`smvl data translate` on small hand-made the_cauldron folders (an OCR subset, a subset with an unreadable parquet
file) and resuming over a large output file."""

from __future__ import annotations

import io
import json
from pathlib import Path

from test_serve_helpers import running
from test_translate import records, run_json, texts, translate
from translator_server import translator_app


def png(shade: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, shade, shade)).save(buf, format="PNG")
    return buf.getvalue()


def write_files(folder: Path, files: list[list[tuple[str, str]]]) -> list[Path]:
    """One parquet file per list of (question, answer) rows, each row with its own one-image."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    paths, shade = [], 0
    for k, rows in enumerate(files):
        table = []
        for question, answer in rows:
            table.append({"images": [{"bytes": png(shade), "path": None}],
                          "texts": [{"user": question, "assistant": answer, "source": folder.name}]})
            shade += 1
        paths.append(folder / f"train-{k:05d}-of-{len(files):05d}.parquet")
        pq.write_table(pa.Table.from_pylist(table), paths[-1])
    return paths


def test_ocr_answers_stay_verbatim_even_yes_and_no(tmp_path, capsys):
    """textvqa's answer is the text on the sign, so "Yes" stays "Yes"; vqav2's yes is an answer and becomes 是."""
    root = tmp_path / "the_cauldron"
    write_files(root / "textvqa", [[("What does the sign say?", "Yes"), ("What is the word on the left?", "no"),
                                    ("What does the sign say?", "STOP")]])
    write_files(root / "vqav2", [[("Is it sunny?", "yes")]])
    out = tmp_path / "zh.jsonl"
    with running(translator_app()) as url:
        report = run_json(translate(root, out, url), capsys)
    assert report["written"] == 4 and report["rejected_total"] == 0
    got = records(out)
    assert [texts(got[f"textvqa:{i}"], "assistant") for i in range(3)] == [["Yes"], ["no"], ["STOP"]]
    assert texts(got["textvqa:0"], "user")[0].startswith("什么")  # the question is still translated
    assert texts(got["vqav2:0"], "assistant") == ["是"]


def test_an_unreadable_parquet_file_is_left_out_and_said_in_one_line(tmp_path, capsys):
    """The middle file of three is cut to half its bytes (its footer is gone): its rows are left out, the report
    names it, and the rows after it keep the indices the_cauldron reader gives them (readable files only), so their
    image references point at the right rows."""
    from smvl.cli import main
    from smvl.data.samples.lazy import decoded
    from smvl.data.samples.skips import SkipLog
    from smvl.data.sources import open_source

    root = tmp_path / "the_cauldron"
    files = write_files(root / "cocoqa", [[("What colour is the largest circle?", c) for c in colours]
                                          for colours in (["red", "blue"], ["green", "red"], ["blue", "green"])])
    whole = files[1].read_bytes()
    files[1].write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "zh" / "zh.jsonl"
    with running(translator_app()) as url:
        report = run_json(translate(root, out, url), capsys)
        assert report["written"] == 4 and report["rejected_total"] == 0
        assert list(report["unreadable_files"]) == [str(files[1])]
        capsys.readouterr()
        assert main([a for a in translate(root, tmp_path / "again.jsonl", url) if a != "--json"]) == 0
        shown = capsys.readouterr().out
    said = [line for line in shown.splitlines() if files[1].name in line]
    assert len(said) == 1 and "unreadable parquet file" in said[0], shown

    got = records(out)
    assert set(got) == {"cocoqa:0", "cocoqa:1", "cocoqa:2", "cocoqa:3"}
    assert texts(got["cocoqa:3"], "assistant") == ["绿色"]  # the last file's second row
    assert got["cocoqa:3"]["images"] == [{"parquet": f"../the_cauldron/cocoqa/{files[2].name}", "row": 1,
                                          "index": 0}]
    skips = SkipLog()
    samples = {s.id: s for s in decoded(open_source(str(out), holdout=0, skips=skips, lazy=True), skips)}
    assert samples["cocoqa:3"].images[0].getpixel((0, 0)) == (5, 5, 5)  # shade 5: file 3, row 2


def test_resume_streams_the_output_it_continues(tmp_path):
    """Only the ids of a resumed output are held, not its records: a file of 8 MB costs well under 1 MB to resume;
    a partial last line (the kill fell mid-write) is dropped."""
    import tracemalloc

    from smvl.data.translate.output import Output

    path = tmp_path / "zh.jsonl"
    padding = "图" * 3000
    with open(path, "w", encoding="utf-8") as f:
        for i in range(900):
            f.write(json.dumps({"id": f"cocoqa:{i}", "messages": [{"role": "user", "content": padding}]},
                               ensure_ascii=False) + "\n")
        f.write('{"id": "cocoqa:900", "mess')
    size = path.stat().st_size
    assert size > 8_000_000
    tracemalloc.start()
    try:
        output = Output(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    output.close()
    assert len(output.done) == 900 and "cocoqa:899" in output.done and "cocoqa:900" not in output.done
    assert peak < 1_000_000, f"resuming held {peak:,} bytes of a {size:,}-byte output"
    assert path.read_bytes().endswith(b"\n") and path.stat().st_size < size
