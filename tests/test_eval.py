"""`smvl eval`: two models side by side, image-use columns, text retention, report with plots, resumable; mixed
image counts (here and at the end of `smvl train`), training's image policy, one-line user errors."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from smvl.cli import main
from smvl.eval import evaluate
from smvl.infer.generate import generate_batch
from smvl.train.run import load_config, train


def test_eval_compares_trained_and_untrained(demo_run, tiny_model, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["eval", str(demo_run / "final"), str(tiny_model), "--data", "synthetic", "--limit", "24",
            "--out", str(out), "--run", str(demo_run)]
    assert main(args) == 0
    report = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    trained, untrained = results["models"]
    assert trained["n"] == untrained["n"] == 24
    assert trained["accuracy_with_images"] > trained["accuracy_blank_images"]
    # an untrained splice cannot answer, with or without the image
    assert abs(untrained["accuracy_with_images"] - untrained["accuracy_blank_images"]) <= 0.1
    assert untrained["accuracy_with_images"] <= untrained["majority_baseline"]
    assert trained["eval_loss"] < untrained["eval_loss"]
    assert untrained["retention"]["identical_greedy"] == 1.0 and untrained["retention"]["mean_kl"] < 1e-6
    assert trained["retention"]["mean_kl"] > 0  # the full recipe moved the LLM
    assert trained["per_subset"]["synthetic"]["metric"] == "exact"
    assert (out / "accuracy.png").stat().st_size > 0 and (out / "loss.png").stat().st_size > 0
    assert "| accuracy with images |" in report and "![loss](loss.png)" in report

    predictions = out / f"predictions-{trained['name']}.jsonl"
    lines = predictions.read_text().splitlines()
    assert len(lines) == 24 * 3
    assert main(args + ["--no-retention"]) == 0  # resumes: nothing is generated again
    assert predictions.read_text().splitlines() == lines


def mixed_jsonl(folder, counts=(1, 1, 2, 2, 2, 3)):
    """A JSONL file whose i-th sample shows counts[i] images of distinct sizes and colours."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "mixed.jsonl", "w", encoding="utf-8") as f:
        for i, n in enumerate(counts):
            names = []
            for k in range(n):
                names.append(f"{i}-{k}.png")
                Image.new("RGB", (40 + 8 * k, 30 + 6 * i), (40 * i, 90 * k, 200)).save(folder / names[-1])
            f.write(json.dumps({"id": f"q{i}", "images": names, "messages": [
                {"role": "user", "content": "<image>" * n + "有几张图？"},
                {"role": "assistant", "content": str(n)}]}) + "\n")
    return folder / "mixed.jsonl"


def record_generation(monkeypatch, real: bool) -> list:
    """Every generate_batch call of eval as (prompts, images); answered by the model, or "1" when not `real`."""
    calls = []

    def record(model, processor, prompts, images, **options):
        calls.append((prompts, images))
        return generate_batch(model, processor, prompts, images, **options) if real else ["1"] * len(prompts)

    monkeypatch.setattr(evaluate, "generate_batch", record)
    return calls


@pytest.fixture
def recorded(monkeypatch):
    return record_generation(monkeypatch, real=True)


@pytest.fixture
def faked(monkeypatch):
    return record_generation(monkeypatch, real=False)


def test_mixed_image_counts_evaluate_with_a_derangement_per_count(tiny_model, tmp_path, recorded, capsys):
    data = mixed_jsonl(tmp_path / "data")
    out = tmp_path / "eval"
    assert main(["eval", str(tiny_model), "--data", str(data), "--split", "all", "--images", "all",
                 "--no-retention", "--out", str(out)]) == 0
    model = json.loads((out / "results.json").read_text())["models"][0]
    rows = {r["id"]: r for r in model["predictions"]}
    count = {f"q{i}": n for i, n in enumerate((1, 1, 2, 2, 2, 3))}
    # q5 is the only 3-image sample: nobody's images fit its question, so it sits out of the shuffled condition
    assert model["scored"] == {"with_images": 6, "blank_images": 6, "shuffled_images": 5}
    assert rows["q5"]["shuffled_images"] is None and rows["q5"]["shuffled_from"] is None
    for sid, row in rows.items():
        if sid != "q5":
            assert row["shuffled_from"] != sid and count[row["shuffled_from"]] == count[sid]
    assert "| samples with shuffled images | 5 |" in capsys.readouterr().out
    prompts, images = zip(*[(p, i) for call in recorded for p, i in zip(*call)])
    assert all(len(i) == sum(1 for part in p[0]["content"] if part["type"] == "image") for p, i in zip(prompts, images))
    assert len(images) == 6 + 6 + 5
    real, blank = images[:6], images[6:12]
    assert all([b.size for b in bs] == [r.size for r in rs] and all(hi == 0 for b in bs for _, hi in b.getextrema())
               for rs, bs in zip(real, blank))


def test_image_policy_matches_training(tiny_model, tmp_path, faked, capsys):
    data = mixed_jsonl(tmp_path / "data")
    assert main(["eval", str(tiny_model), "--data", str(data), "--split", "all", "--no-retention",
                 "--out", str(tmp_path / "first")]) == 0
    assert all(len(i) == 1 for call in faked for i in call[1])  # images: first (training's default)
    faked.clear()
    assert main(["eval", str(tiny_model), "--data", str(data), "--split", "all", "--images", "all", "--max-images",
                 "2", "--no-retention", "--out", str(tmp_path / "two")]) == 0
    assert "too many images" in capsys.readouterr().out  # like training, a 3-image sample is refused, not cut
    model = json.loads((tmp_path / "two" / "results.json").read_text())["models"][0]
    assert model["n"] == 5 and {len(i) for call in faked for i in call[1]} == {1, 2}


def test_training_end_of_run_eval_takes_mixed_image_counts(tiny_model, tmp_path):
    data = mixed_jsonl(tmp_path / "data")
    cfg = load_config(None, ["--model.path", str(tiny_model), "--data.train", str(data), "--data.eval", str(data),
                             "--data.images", "all", "--steps", "2", "--batch_size", "2",
                             "--output_dir", str(tmp_path / "run")])
    train(cfg)
    results = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert results["n"] == 6 and results["scored"]["shuffled_images"] == 5


@pytest.mark.parametrize("args, message", [
    (["--metric", "bleu"], "unknown metric 'bleu'; choose one of exact, vqa, anls, relaxed, choice"),
    (["--data", "imagenet"], "unknown data source 'imagenet'"),
    (["--data", "nowhere/data.jsonl"], "nowhere/data.jsonl does not exist"),
    (["NO_SUCH_MODEL"], "NO_SUCH_MODEL is neither an existing folder nor a hub id"),  # the second model: the first is not run
])
def test_user_errors_are_one_line_before_any_model_is_loaded(args, message, tiny_model, tmp_path, capsys,
                                                             monkeypatch):
    loaded = []
    monkeypatch.setattr(evaluate, "load", lambda *a, **k: loaded.append(a))
    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(tiny_model), *args, "--out", "eval"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("smvl eval: error: ") and err.count("\n") == 1 and message in err, err
    assert not loaded and not (tmp_path / "eval").exists()
