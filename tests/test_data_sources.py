"""Sources: the_cauldron folders, JSONL and LLaVA files, mixing, hold-outs, and skipped samples by reason."""

from __future__ import annotations

import io
import itertools
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from smvl.cli import main
from smvl.data.sources.mixing import mix_text_only, parse_weights, weighted_interleave
from smvl.data.samples.sample import Sample
from smvl.data.samples.skips import SkipLog, TooManySkipped
from smvl.data.sources import open_source
from smvl.errors import UserError

ROW_TYPE = pa.struct([
    ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
    ("texts", pa.list_(pa.struct([("user", pa.string()), ("assistant", pa.string()), ("source", pa.string())]))),
])


def image_bytes(size=(16, 12), colour=(200, 10, 10), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


def write_hf_subset(root, name, rows):
    """As `datasets` writes them (the real download): parquet with the `Image` feature in its metadata."""
    from datasets import Dataset, Features, List, Value
    from datasets import Image as ImageFeature

    text = {k: Value("string") for k in ("user", "assistant", "source")}
    features = Features({"images": List(ImageFeature()), "texts": List(text)})
    (root / name).mkdir(parents=True)
    Dataset.from_list(rows, features=features).to_parquet(str(root / name / "train-00000.parquet"))


def row(n_images=1, turns=1, answer="a cat", corrupt=False, tiny=False):
    data = b"garbage" if corrupt else image_bytes((1, 1) if tiny else (16, 12))
    return {"images": [{"bytes": data, "path": None}] * n_images,
            "texts": [{"user": f"q{t}", "assistant": answer, "source": "x"} for t in range(turns)]}


def write_subset(root, name, rows, files=1):
    folder = root / name
    folder.mkdir(parents=True)
    per = -(-len(rows) // files)
    for f in range(files):
        table = pa.Table.from_pylist(rows[f * per:(f + 1) * per], schema=pa.schema(list(ROW_TYPE)))
        pq.write_table(table, folder / f"train-{f:05d}.parquet")


@pytest.fixture()
def cauldron(tmp_path):
    root = tmp_path / "the_cauldron"
    write_subset(root, "cocoqa", [row() for _ in range(40)], files=2)
    write_subset(root, "ai2d", [row(turns=2) for _ in range(20)])
    broken = [row() for _ in range(16)] + [row(corrupt=True), row(tiny=True), row(answer="  "), row(n_images=2)]
    write_subset(root, "vqarad", broken)
    jpeg = {"images": [{"bytes": image_bytes(fmt="JPEG"), "path": "x.jpg"}],
            "texts": [{"user": "q", "assistant": "a", "source": "s"}] * 3}
    write_hf_subset(root, "chartqa", [jpeg] * 9 + [{**jpeg, "images": [{"bytes": b"\xff\xd8trunc", "path": None}]}])
    return root


def test_cauldron_folder_all_turns_and_skips(cauldron):
    skips = SkipLog(max_fraction=0.5)
    samples = list(open_source(str(cauldron), subsets="all", holdout=0, skips=skips))
    by_subset = Counter(s.source for s in samples)
    assert by_subset == {"cocoqa": 40, "ai2d": 20, "vqarad": 18, "chartqa": 9}
    two_turns = next(s for s in samples if s.source == "ai2d")
    assert [m["role"] for m in two_turns.messages] == ["user", "assistant"] * 2
    assert two_turns.messages[0]["content"][0] == {"type": "image"}
    assert next(s for s in samples if len(s.images) == 2).image_parts() == 2
    assert len(next(s for s in samples if s.source == "chartqa").messages) == 6
    assert dict(skips.by_reason) == {"corrupt image": 2, "empty answer": 1}
    assert "vqarad:16" in skips.table() and "chartqa:9" in skips.table()


def test_holdout_by_count_and_fraction_is_disjoint_and_deterministic(cauldron):
    for holdout in (5, 0.25):
        test = [s.id for s in open_source(str(cauldron), "test", subsets="cocoqa", holdout=holdout)]
        train = [s.id for s in open_source(str(cauldron), "train", subsets="cocoqa", holdout=holdout)]
        assert not set(test) & set(train) and len(test) + len(train) == 40
        assert test == [s.id for s in open_source(str(cauldron), "test", subsets="cocoqa", holdout=holdout)]
    assert len(test) > 0


def test_mixture_weights_and_cap(cauldron):
    samples = list(open_source(str(cauldron), subsets="cocoqa,ai2d", weights="cocoqa:1,ai2d:0.5", holdout=0,
                               max_samples=30, seed=3))
    counts = Counter(s.source for s in samples)
    assert len(samples) == 30 and counts["cocoqa"] > counts["ai2d"] > 0


def test_missing_subset_and_source(cauldron, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        list(open_source(str(cauldron), subsets="nope"))
    with pytest.raises(FileNotFoundError):
        list(open_source(str(tmp_path / "missing.jsonl")))
    with pytest.raises(UserError, match="unknown data source"):
        list(open_source("what"))


def test_jsonl_and_llava_files(tmp_path):
    (tmp_path / "img.png").write_bytes(image_bytes())
    lines = [
        {"id": "ok", "images": ["img.png"], "messages": [{"role": "user", "content": "<image>这是什么？"},
                                                          {"role": "assistant", "content": "红色方块"}]},
        {"images": ["img.png"], "messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]},
                                             {"role": "assistant", "content": "a"}]},
        {"images": [], "messages": [{"role": "user", "content": "<image> two markers <image>"},
                                    {"role": "assistant", "content": "a"}]},
        {"images": ["gone.png"], "messages": [{"role": "user", "content": "<image>"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": 3}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}]},
        {"id": "no-messages", "images": []},
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n{broken json\n")
    skips = SkipLog(max_fraction=1.0)
    samples = list(open_source(str(path), holdout=0, skips=skips))
    assert [s.id for s in samples] == ["ok", "data.jsonl:2"]
    assert samples[0].messages[0]["content"] == [{"type": "image"}, {"type": "text", "text": "这是什么？"}]
    assert dict(skips.by_reason) == {"image count mismatch": 1, "missing image file": 1, "non-string content": 1,
                                     "invalid JSON": 1, "empty answer": 1, "missing fields": 1}
    table = skips.table()
    assert "skipped 6 of 8" in table and "data.jsonl:8" in table and "data.jsonl:7" in table  # file:line, to find it

    llava = tmp_path / "llava.json"
    llava.write_text(json.dumps([{"id": "l1", "image": "img.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A square."},
        {"from": "human", "value": "Colour?"}, {"from": "gpt", "value": "Red."}]}]))
    (sample,) = open_source(str(llava), holdout=0)
    assert sample.messages[0]["content"] == [{"type": "image"}, {"type": "text", "text": "What is it?"}]
    assert len(sample.messages) == 4

    shared_gpt = tmp_path / "sharegpt.jsonl"  # LLaVA records one per line: recognised by `conversations`
    shared_gpt.write_text("\n".join(json.dumps({"image": ["img.png"] * n, "conversations": [
        {"from": "system", "value": "Be brief."}, {"from": "human", "value": "<image>\n<image> same?"},
        {"from": "gpt", "value": "Yes."}]}) for n in (2, 1)))
    skips = SkipLog(max_fraction=1.0)
    (sample,) = open_source(str(shared_gpt), holdout=0, skips=skips)
    assert [m["role"] for m in sample.messages] == ["system", "user", "assistant"] and len(sample.images) == 2
    assert sample.messages[1]["content"] == [{"type": "image"}, {"type": "image"}, {"type": "text", "text": " same?"}]
    assert skips.examples["image count mismatch"] == ["sharegpt.jsonl:2"]


def test_too_many_bad_samples_stop_the_run(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(["{oops"] * 30))
    with pytest.raises(TooManySkipped, match="30 of 30|skipped"):
        list(open_source(str(path), holdout=0, skips=SkipLog(max_fraction=0.05)))


def test_text_only_mixing_ratio():
    image = [Sample([{"role": "user", "content": "i"}], id=f"i{k}") for k in range(2000)]
    text = (Sample([{"role": "user", "content": "t"}], id=f"t{k}") for k in range(10**6))
    mixed = list(mix_text_only(image, text, 0.14, seed=0))
    share = sum(s.id.startswith("t") for s in mixed) / len(mixed)
    assert abs(share - 0.14) < 0.02


def test_data_inspect_cli(capsys):
    assert main(["data", "inspect", "synthetic", "--limit", "20", "--max-length", "60"]) == 0
    out = capsys.readouterr().out
    assert "samples read: 20" in out and "image tokens per sample" in out and "【" in out
    assert "<image 1 tile" in out or "<image 2x2 tiles" in out


def test_data_inspect_counts_a_sample_the_collator_rejects(tmp_path, capsys):
    (tmp_path / "img.png").write_bytes(image_bytes())
    records = [{"id": name, "images": ["img.png"], "messages": [{"role": "user", "content": f"<image>{question}"},
                                                                  {"role": "assistant", "content": "红色"}]}
               for name, question in (("ok", "什么颜色？"), ("marker", "<|image_pad|>是什么？"))]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records))
    assert main(["data", "inspect", str(path), "--limit", "5", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "samples read: 1" in out and "sample ok" in out
    assert any(line.split()[:5] == ["marker", "token", "in", "text", "1"] for line in out.splitlines())


def test_shards_are_disjoint_and_cover_the_split(cauldron, tmp_path):
    for spec, opts in ((str(cauldron), {"subsets": "cocoqa,ai2d", "holdout": 0.2}), ("synthetic", {"max_samples": 30})):
        whole = {s.id for s in open_source(spec, **opts)}
        parts = [{s.id for s in open_source(spec, shard=(k, 3), **opts)} for k in range(3)]
        assert set().union(*parts) == whole and sum(map(len, parts)) == len(whole)
        held = {s.id for s in open_source(spec, "test", **opts)}
        assert not held & whole


def test_count_holdout_stops_reading_early(cauldron, monkeypatch):
    import smvl.data.sources.cauldron as cauldron_module

    decoded = []
    real = cauldron_module.row_to_sample
    monkeypatch.setattr(cauldron_module, "row_to_sample", lambda *a: decoded.append(a[1]) or real(*a))
    assert len(list(open_source(str(cauldron), "test", subsets="cocoqa", holdout=4))) == 4
    assert len(decoded) == 4
    decoded.clear()
    list(open_source(str(cauldron), "train", subsets="cocoqa", holdout=4, shard=(1, 2)))
    assert len(decoded) == 18  # only this shard's rows are decoded


def test_streaming_equals_non_streaming(cauldron, tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))  # not ~/.cache

    def read(streaming):
        skips = SkipLog(max_fraction=0.5)
        got = [(s.id, s.messages, [im.tobytes() for im in s.images])
               for s in open_source(str(cauldron), subsets="all", holdout=0.2, streaming=streaming, skips=skips)]
        return got, dict(skips.by_reason)

    assert read(True) == read(False) and len(read(True)[0]) > 50


@pytest.mark.parametrize("streaming", [True, False])
def test_broken_subset_is_skipped_not_fatal(cauldron, tmp_path, monkeypatch, streaming):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    (cauldron / "broken").mkdir()
    (cauldron / "broken" / "train-00000.parquet").write_bytes(b"PAR1 not really parquet")
    skips = SkipLog(max_fraction=0.5)
    samples = list(open_source(str(cauldron), subsets="broken,ai2d", holdout=0, streaming=streaming, skips=skips))
    assert len(samples) == 20 and skips.by_reason == {"unreadable parquet file": 1}
    assert skips.examples["unreadable parquet file"][0].startswith("broken/train-00000.parquet (")


def test_mixture_proportions():
    def stream(name):
        return lambda _pass: (Sample([], id=f"{name}{k}") for k in range(10**6))

    weights = parse_weights("a:1,b:0.5,c:0", ["a", "b", "c"])
    draws = list(itertools.islice(weighted_interleave({n: stream(n) for n in "abc"}, weights, seed=1), 6000))
    counts = Counter(s.id[0] for s in draws)
    assert "c" not in counts and abs(counts["b"] / counts["a"] - 0.5) < 0.06
    again = itertools.islice(weighted_interleave({n: stream(n) for n in "abc"}, weights, seed=1), 6000)
    assert [s.id for s in again] == [s.id for s in draws]
    with pytest.raises(UserError, match="unknown subset"):
        parse_weights("a:1,zz:2", ["a"])


def test_all_subsets_without_weights_interleave_in_proportion_to_size(tmp_path):
    """`subsets: all` with no weights must not read the subsets one after another (alphabetically): every prefix of
    the stream holds each subset in about its share of the whole, and every row is still read once."""
    root = tmp_path / "c"
    for name, n in (("aaa", 120), ("mmm", 60), ("zzz", 20)):
        write_subset(root, name, [row() for _ in range(n)])
    samples = list(open_source(str(root), subsets="all", holdout=0, seed=5))
    assert Counter(s.source for s in samples) == {"aaa": 120, "mmm": 60, "zzz": 20}
    # Drawn without replacement, the first 40 follow a multivariate hypergeometric law: for zzz (share 0.1)
    # mean 4, sd ~1.7; for aaa (0.6) mean 24, sd ~2.8. Bounds at ~2.5 sd fail in well under 1% of seeds.
    first = Counter(s.source for s in samples[:40])
    assert 18 <= first["aaa"] <= 30 and 6 <= first["mmm"] <= 18 and 1 <= first["zzz"] <= 8, first
    again = [s.id for s in open_source(str(root), subsets="all", holdout=0, seed=5)]
    assert again == [s.id for s in samples]
    capped = open_source(str(root), subsets="all", holdout=0, seed=5, max_samples=20)
    assert [s.id for s in capped] == [s.id for s in samples[:20]]


def test_count_holdout_eval_split_is_stratified_over_subsets(tmp_path):
    root = tmp_path / "c"
    for name, n in (("aaa", 100), ("mmm", 50), ("zzz", 30)):
        write_subset(root, name, [row() for _ in range(n)])
    held = [s.source for s in open_source(str(root), split="test", holdout=10, seed=1)]
    assert Counter(held) == {"aaa": 10, "mmm": 10, "zzz": 10}
    assert set(held[:9]) == {"aaa", "mmm", "zzz"}


def test_data_inspect_measures_a_cauldron_folder_with_the_real_pairs_processor(tmp_path, assets, capsys):
    """A 1700x2200 scan costs the real pair 16 tiles + a global image = 17 x 64 = 1,088 image tokens: what
    planning max_length needs. The tiny preset's processor (the old default) said 138 for every sample."""
    root = tmp_path / "c"
    scan = {"images": [{"bytes": image_bytes((1700, 2200), (250, 250, 250), "JPEG"), "path": None}],
            "texts": [{"user": "What is the title?", "assistant": "A report", "source": "docvqa"}]}
    write_subset(root, "docvqa", [scan] * 2)
    args = ["data", "inspect", str(root), "--vision", str(assets / "smolvlm2-256m-video-instruct"),
            "--text", str(assets / "qwen3-0.6b"), "--max-length", "1024"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("== figures for the processor of a splice of") and "512 px, 64 tokens per tile" in out
    image_rows = out.split("image tokens per sample:")[1].split("text tokens")[0]
    # 1,088 features plus the block's markers (a <|vision_start|> per tile, <row_r_col_c> as 8 text tokens, ...).
    assert 1088 < int(image_rows.split()[0].split("-")[0]) < 1300, image_rows
    assert "at max_length 1024: " in out and "0 truncated (turns or answer cut), 2 re-tiled" in out


def test_data_inspect_defaults_to_the_real_pair_not_the_tiny_preset(tmp_path, capsys):
    root = tmp_path / "c"
    write_subset(root, "cocoqa", [row()])
    assert main(["data", "inspect", str(root)]) == 2  # the hub is unreachable here: the real pair cannot be fetched
    err = capsys.readouterr().err
    assert "HuggingFaceTB/SmolVLM2-256M-Video-Instruct" in err and err.count("\n") == 1


def test_a_few_clustered_bad_rows_early_do_not_stop_a_run_but_a_wreck_does():
    skips = SkipLog(max_fraction=0.05)
    for i in range(36):
        skips.skip(f"r{i}", "corrupt image") if i in (5, 6) else skips.ok()  # 5.6% of 36, 1% of the 200 floor
    for i in range(200):
        skips.ok()
    wreck = SkipLog(max_fraction=0.05)
    with pytest.raises(TooManySkipped, match="11 of 11"):
        for i in range(30):
            wreck.skip(f"w{i}", "missing image file")


def test_a_mixture_of_sources_draws_by_weight_and_its_shards_cover_it(tmp_path):
    """`a.jsonl*1 + folder*3`: about three cauldron rows per JSONL record, and 2 shards read every sample of every
    part (the cauldron's several times: it is read again until the JSONL has been read through)."""
    root = tmp_path / "c"
    write_subset(root, "cocoqa", [row(answer=f"c{i}") for i in range(60)])
    records = [{"messages": [{"role": "user", "content": f"问题{i}"}, {"role": "assistant", "content": f"j{i}"}]}
               for i in range(60)]
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    spec = f"{path}*1 + {root}*3"
    first = [s.messages[-1]["content"][0] for s in itertools.islice(open_source(spec, holdout=0, seed=5), 40)]
    assert 22 <= first.count("c") <= 38, first
    halves = [[s.messages[-1]["content"] for s in open_source(spec, holdout=0, shard=(k, 2))] for k in range(2)]
    both = halves[0] + halves[1]
    assert set(both) == {f"c{i}" for i in range(60)} | {f"j{i}" for i in range(60)}
    assert 2 <= sum(s[0] == "c" for s in both) / sum(s[0] == "j" for s in both) <= 4
    with pytest.raises(UserError, match="only zero weights"):
        list(open_source(f"{path}*0 + {root}*0"))
