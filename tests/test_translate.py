"""`smvl data translate` against real HTTP servers on loopback: a scripted fake translator that misbehaves on
purpose (translator_server.py) and `smvl serve` with the tiny random model, whose answers are garbage."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cauldron_folder import subset_rows, write_cauldron
from test_serve_helpers import free_port, loaded, running  # noqa: F401
from translator_server import translator_app

from smvl.cli import main

SRC = Path(__file__).resolve().parents[1] / "src"
ROWS = 214
# The texts the folder asks for under the shipped policy: ai2d's question and 4 letter answers, cocoqa's question
# and 3 colours, mimic_cgd's 2 questions and 4 answers, nlvr2's question and True/False, vqav2's 2 questions, the
# questions of chartqa and docvqa (their answers are read from the image: kept); numbers and yes/no are not asked.
DISTINCT_TEXTS = 22


def digests(images) -> list[str]:
    """Pixels compared by digest: a failing comparison of raw bytes makes pytest diff megabytes."""
    return [hashlib.sha256(im.tobytes()).hexdigest() for im in images]


@pytest.fixture(scope="module")
def cauldron(tmp_path_factory) -> Path:
    return write_cauldron(tmp_path_factory.mktemp("cauldron") / "the_cauldron")


def translate(cauldron, out, url, *extra, model="fake") -> dict:
    args = ["data", "translate", str(cauldron), "--out", str(out), "--endpoint", f"{url}/v1", "--model", model,
            "--json", "--no-progress", "--backoff", "0.01", *extra]
    return args


def run_json(args, capsys) -> dict:
    capsys.readouterr()
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


def records(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def texts(record: dict, role: str) -> list[str]:
    return ["".join(p.get("text", "") for p in m["content"]) for m in record["messages"] if m["role"] == role]


def test_translates_every_turn_keeps_what_the_image_says_and_the_output_trains(cauldron, tmp_path, capsys):
    app = translator_app()
    out = tmp_path / "zh.jsonl"
    with running(app) as url:
        report = run_json(translate(cauldron, out, url), capsys)
    assert report["written"] == ROWS and report["rejected_total"] == 0
    assert report["texts_asked"] == DISTINCT_TEXTS == sum(app.state.counts.values())  # each text asked once
    assert report["usage"]["prompt_tokens"] == sum(10 + len(t) for t in app.state.counts)
    got = records(out)
    assert len(got) == ROWS
    assert texts(got["docvqa:0"], "assistant") == ["ANNUAL REPORT"]  # read from the image: untouched
    assert texts(got["docvqa:0"], "user") == ["什么 是  标题 的  文件？"]
    assert texts(got["ai2d:1"], "assistant") == ["答案: B"]
    assert "\nA. A\nB. B\nC. C\nD. D\n" in texts(got["ai2d:1"], "user")[0]
    assert texts(got["vqav2:0"], "assistant") == ["1"] and texts(got["chartqa:0"], "assistant")[0][0].isdigit()
    assert {texts(got[f"vqav2:{i}"], "assistant")[1] for i in range(1, 60, 2)} == {"是", "否"}  # yes/no
    assert len(texts(got["mimic_cgd:0"], "user")) == 2 and texts(got["mimic_cgd:0"], "assistant")[1] == "图片 1."

    from smvl.data.sources.cauldron import row_to_sample
    from smvl.data.samples.lazy import decoded
    from smvl.data.samples.skips import SkipLog
    from smvl.data.sources import open_source

    skips = SkipLog()
    samples = {s.id: s for s in decoded(open_source(str(out), holdout=0, skips=skips, lazy=True), skips)}
    assert len(samples) == ROWS - 3 and skips.by_reason == {"corrupt image": 3}  # the folder's corrupt rows
    source = row_to_sample(subset_rows(cauldron, "mimic_cgd")[3], "mimic_cgd:3", "mimic_cgd")
    assert digests(samples["mimic_cgd:3"].images) == digests(source.images)
    assert not any((out.parent).glob("*.png")) and not any((out.parent).glob("*.jpg"))  # nothing copied

    capsys.readouterr()
    assert main(["data", "inspect", str(out), "--preset", "tiny", "--limit", "20"]) == 0  # what training reads
    shown = capsys.readouterr().out
    assert "samples read: 20" in shown and "image reference" not in shown and "missing image" not in shown


def test_translated_jsonl_still_reads_after_moving_it_with_the_cauldron_to_another_place(cauldron, tmp_path,
                                                                                        capsys):
    """Its parquet references are relative to the JSONL's folder, so a tree holding both (copied to another machine,
    or moved) still reads; absolute paths pointed back at where the tree was."""
    import shutil

    from smvl.data.sources.cauldron import row_to_sample
    from smvl.data.samples.lazy import decoded
    from smvl.data.samples.skips import SkipLog
    from smvl.data.sources import open_source

    before = tmp_path / "before"
    shutil.copytree(cauldron, before / "the_cauldron")
    with running(translator_app()) as url:
        report = run_json(translate(before / "the_cauldron", before / "zh" / "zh.jsonl", url, "--limit", "40"),
                          capsys)
    assert report["written"] == 40
    after = tmp_path / "elsewhere" / "after"
    after.parent.mkdir()
    before.rename(after)

    out = after / "zh" / "zh.jsonl"
    skips = SkipLog(max_fraction=1.0)
    samples = {s.id: s for s in decoded(open_source(str(out), holdout=0, skips=skips, lazy=True), skips)}
    assert "missing image file" not in skips.by_reason
    assert len(samples) + skips.skipped == 40 and set(skips.by_reason) <= {"corrupt image"}
    refs = {ref["parquet"] for r in records(out).values() for ref in r["images"]}
    assert refs and all(not Path(p).is_absolute() and p.startswith("../the_cauldron/") for p in refs)
    some = next(s for s in samples.values() if s.images)
    subset, row = some.id.rsplit(":", 1)
    source = row_to_sample(subset_rows(after / "the_cauldron", subset)[int(row)], some.id, subset)
    assert digests(some.images) == digests(source.images)


def test_misbehaving_server_is_retried_rejected_by_reason_and_never_paid_twice(cauldron, tmp_path, capsys):
    script = {"Which label marks the sun": ["429", "500", "timeout"],  # retried, then fine
              "What colour is the largest circle": ["english"],  # 40 cocoqa rows
              "What differs between": ["empty"],  # 12 mimic_cgd rows
              "Answer: B": ["lose letters"]}  # ai2d rows 1, 5, ..., 29
    app = translator_app(script, hang=3.0)
    out = tmp_path / "zh.jsonl"
    with running(app) as url:
        args = translate(cauldron, out, url, "--timeout", "0.5", "--concurrency", "4")
        first = run_json(args, capsys)
        assert first["rejected"] == {"not Chinese": 40, "empty translation": 12, "option letters lost": 8}
        assert first["written"] == ROWS - 60
        assert first["usage"]["retries"] == 3 and first["usage"]["errors"] == {
            "RateLimitError": 1, "InternalServerError": 1, "APITimeoutError": 1}
        assert sum(app.state.counts.values()) == DISTINCT_TEXTS + 3

        again = run_json(args, capsys)  # rejections come from the cache: nothing is asked again
        assert sum(app.state.counts.values()) == DISTINCT_TEXTS + 3
        assert again["already_written"] == ROWS - 60 and again["written"] == 0
        assert again["rejected"] == first["rejected"] and again["usage"]["requests"] == 0

        retried = run_json(args + ["--retry-rejected"], capsys)  # the script now lets them through
        assert sum(app.state.counts.values()) == DISTINCT_TEXTS + 3 + 3
        assert retried["written"] == 60 and retried["rejected_total"] == 0
    assert len(records(out)) == ROWS


def test_an_answer_cut_at_max_tokens_is_rejected_not_written(cauldron, tmp_path, capsys):
    """finish_reason "length": the fragment looks Chinese and keeps the numbers, but half a question is not a
    translation. Rejected and cached like any rejection (at temperature 0 the same request gets the same cut)."""
    app = translator_app({"What colour is the largest circle": ["cut"]})
    out = tmp_path / "zh.jsonl"
    with running(app) as url:
        args = translate(cauldron, out, url, "--subsets", "cocoqa")
        first = run_json(args, capsys)
        assert first["rejected"] == {"cut at max_tokens": 40} and first["written"] == 0
        assert first["usage"]["completion_tokens"] > 0  # paid for, and said so
        again = run_json(args, capsys)
    assert again["rejected"] == first["rejected"] and again["usage"]["requests"] == 0
    assert not out.read_text()


def answers(cache: Path) -> int:
    """Answers committed to the cache so far by another process (0 before it has made the table)."""
    import sqlite3

    if not cache.is_file():
        return 0
    try:
        with sqlite3.connect(cache, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_kill_9_mid_run_then_rerun_pays_only_for_requests_in_flight(cauldron, tmp_path, capsys):
    app = translator_app(delay=0.3)
    out = tmp_path / "zh.jsonl"
    concurrency = 2
    with running(app) as url:
        args = translate(cauldron, out, url, "--concurrency", str(concurrency))
        env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        child = subprocess.Popen([sys.executable, "-m", "smvl", *args], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        cache = out.with_name(out.name + ".cache.sqlite")
        deadline = time.time() + 120
        while time.time() < deadline and child.poll() is None and answers(cache) < 6:
            time.sleep(0.05)
        assert child.poll() is None, child.stderr.read().decode()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        asked_before = sum(app.state.counts.values())
        assert 6 <= asked_before < DISTINCT_TEXTS
        report = run_json(args, capsys)
    assert report["already_written"] > 0 and report["already_written"] + report["written"] == ROWS
    paid = sum(app.state.counts.values())
    assert DISTINCT_TEXTS <= paid <= DISTINCT_TEXTS + concurrency  # only answers lost in flight are asked again
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(set(json.loads(x)["id"] for x in lines)) == ROWS


def test_smvl_serve_garbage_is_rejected_counted_and_never_written(loaded, cauldron, tmp_path, capsys):  # noqa: F811
    from smvl.serve.app import build_app
    from smvl.serve.settings import Settings

    out = tmp_path / "zh.jsonl"
    with running(build_app(*loaded, Settings(model_name="smvl"))) as url:
        report = run_json(translate(cauldron, out, url, "--subsets", "cocoqa,ai2d", "--limit", "8", model="smvl"),
                          capsys)
    assert report["written"] == 0 and report["rejected_total"] == 8 and "request failed" not in report["rejected"]
    assert report["usage"]["requests"] == report["texts_asked"] > 0 and report["usage"]["completion_tokens"] > 0
    assert not out.read_text()


def test_an_endpoint_refusing_the_key_or_the_model_stops_the_run_in_one_line(loaded, cauldron, tmp_path,  # noqa: F811
                                                                            capsys, monkeypatch):
    from smvl.serve.app import build_app
    from smvl.serve.settings import Settings

    monkeypatch.setenv("SMVL_TEST_KEY", "wrong")
    with running(build_app(*loaded, Settings(model_name="smvl", api_key="sekret"))) as url:
        capsys.readouterr()
        assert main(translate(cauldron, tmp_path / "zh.jsonl", url, "--limit", "4", "--api-key-env",
                              "SMVL_TEST_KEY", model="smvl")) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "(401)" in err, err
    with running(build_app(*loaded, Settings(model_name="smvl"))) as url:
        capsys.readouterr()
        assert main(translate(cauldron, tmp_path / "zh.jsonl", url, "--limit", "4", model="gpt-9")) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "(404)" in err and "gpt-9" in err, err


@pytest.mark.parametrize("case", ["missing folder", "unknown subset", "unreachable endpoint", "bad policy",
                                  "unset key variable", "no readable parquet file"])
def test_bad_input_is_one_line_and_exit_2(case, cauldron, tmp_path, capsys):
    source, url, extra = str(cauldron), "http://127.0.0.1:9", []
    if case == "missing folder":
        source = str(tmp_path / "nowhere")
    elif case == "unknown subset":
        extra = ["--subsets", "cocoqa,nosuchsubset"]
    elif case == "unreachable endpoint":
        url = f"http://127.0.0.1:{free_port()}"
    elif case == "unset key variable":
        extra = ["--api-key-env", "SMVL_TEST_NO_SUCH_KEY"]
    elif case == "no readable parquet file":
        broken = tmp_path / "broken" / "cocoqa" / "train-00000-of-00001.parquet"
        broken.parent.mkdir(parents=True)
        whole = next((cauldron / "cocoqa").glob("*.parquet")).read_bytes()
        broken.write_bytes(whole[: len(whole) // 2])
        source = str(tmp_path / "broken")
    else:
        (tmp_path / "policy.yaml").write_text("translate: [cocoqa]\n")
        extra = ["--policy", str(tmp_path / "policy.yaml")]
    capsys.readouterr()
    assert main(translate(source, tmp_path / "zh.jsonl", url, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("smvl data: error:") and "\n" not in err, err
    assert {"missing folder": "nowhere", "unknown subset": "nosuchsubset", "unreachable endpoint": "unreachable",
            "bad policy": "policy", "unset key variable": "SMVL_TEST_NO_SUCH_KEY",
            "no readable parquet file": "train-00000-of-00001.parquet"}[case] in err


@pytest.mark.parametrize("source, translation, reason", [
    ("How many in 2019?", "2019年有多少？", None),
    ("How many in 2019?", "有多少？", "numbers lost"),
    ("It costs 1,000 dollars.", "它花费1000美元。", None),
    ("Choices:\nA. cat\nB. dog", "选项：\nA. 猫\nB. 狗", None),
    ("Choices:\nA. cat\nB. dog", "选项：\n猫\n狗", "option letters lost"),
    ("The answer is (C).", "答案是 C。", "option letters lost"),
    ("Answer: C", "答案：C", None),
    ("Answer: B", "答案：C", "option letters lost"),  # the letter changed, not only dropped
    ("Choices:\nA. cat\nB. dog", "选项：\nA. 猫\nC. 狗", "option letters lost"),
    ("Answer: B", "答案：B，不是C", "option letters changed"),
    ("B is correct.", "C是正确的。", "option letters changed"),
    ("Is figure A larger than figure B?", "图A比图B大吗？", None),
    ("Is it 25 degrees in the room?", "房间里是25°C吗？", None),  # a unit, in a text naming no letter
    ("What is in the picture?", "What is in the picture?", "not Chinese"),
    ("What is in the picture?", "抱歉，我无法翻译这句话。", "refusal or commentary"),
    ("What is in the picture?", "   ", "empty translation"),
    ("What is the name of the tallest building in the picture?", "名字", "length ratio"),
    ("What is in the picture?", "图片里有什么？" * 10, "length ratio"),
])
def test_validation_names_the_reason(source, translation, reason):
    from smvl.data.translate.validate import rejection

    assert rejection(source, translation) == reason


def test_yes_no_maps_to_chinese_when_answers_are_translated_and_ocr_answers_stay_verbatim():
    from smvl.data.samples.sample import Sample
    from smvl.data.translate.texts import fixed_translation, texts_to_translate

    sample = Sample([{"role": "user", "content": "Is the sign red?"}, {"role": "assistant", "content": "Yes."},
                     {"role": "user", "content": "What does it say?"}, {"role": "assistant", "content": "STOP"}])
    assert texts_to_translate(sample, "both") == [(0, "Is the sign red?"), (1, "Yes."), (2, "What does it say?"),
                                                  (3, "STOP")]
    assert texts_to_translate(sample, "question") == [(0, "Is the sign red?"), (2, "What does it say?")]
    assert texts_to_translate(sample, "keep") == []
    assert [fixed_translation(t) for t in ("Yes.", "no", "B", "12.5%", "(C)", "Blue")] == ["是", "否", "B", "12.5%",
                                                                                          "(C)", None]


def test_a_jsonl_image_can_reference_a_parquet_row(cauldron, tmp_path):
    """Through several files and row groups: the reference of every row (as translate writes it) reads back the
    images the_cauldron reader gives for that row; bad references are skipped and counted."""
    import pyarrow.parquet as pq

    from smvl.data.sources.cauldron import cauldron_samples
    from smvl.data.samples.skips import SkipLog
    from smvl.data.sources import open_source
    from smvl.data.translate.source import CauldronFolder

    import pyarrow as pa

    table = pa.Table.from_pylist(subset_rows(cauldron, "mimic_cgd"),
                                 schema=pq.read_schema(sorted((cauldron / "mimic_cgd").glob("*.parquet"))[0]))
    (tmp_path / "split" / "mimic_cgd").mkdir(parents=True)
    for k, rows in enumerate((table.slice(0, 7), table.slice(7))):
        pq.write_table(rows, tmp_path / "split" / "mimic_cgd" / f"part-{k}.parquet", row_group_size=3)
    folder = CauldronFolder(tmp_path / "split")
    want = list(cauldron_samples(tmp_path / "split", holdout=0))
    record = {"messages": [{"role": "user", "content": "<image>" * 4 + "?"}, {"role": "assistant", "content": "否"}]}
    lines = [{**record, "id": s.id, "images": folder.image_refs("mimic_cgd", int(s.id.split(":")[1]), 4)}
             for s in want if len(s.images) == 4]
    parquet = str(tmp_path / "split" / "mimic_cgd" / "part-1.parquet")
    lines += [{**record, "id": "past the end", "images": [{"parquet": parquet, "row": 5, "index": 0}] * 4},
              {**record, "id": "no such image", "images": [{"parquet": parquet, "row": 0, "index": 4}] * 4},
              {**record, "id": "no such file", "images": [{"parquet": "nowhere.parquet", "row": 0}] * 4}]
    path = tmp_path / "refs.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    skips = SkipLog(max_fraction=1.0)
    got = {s.id: s for s in open_source(str(path), holdout=0, skips=skips)}
    assert len(got) == 6 and {r["images"][0]["parquet"] for r in lines[:6]} == {
        str(p.resolve()) for p in (tmp_path / "split" / "mimic_cgd").glob("*.parquet")}
    for sample in want:
        if sample.id in got:
            assert digests(got[sample.id].images) == digests(sample.images)
    assert skips.by_reason == {"bad image reference": 2, "missing image file": 1}
