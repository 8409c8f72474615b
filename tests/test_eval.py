"""`smvl eval`: two models side by side, image-use columns, text retention, report with plots, resumable."""

from __future__ import annotations

import json

from smvl.cli import main


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
