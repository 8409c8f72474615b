"""Saved predictions are reused only for the same model and the same questions; `--force` ignores them."""

from __future__ import annotations

import shutil

import pytest

from smvl.cli import main
from smvl.eval import evaluate

EVERY_ANSWER = 4 * 3  # 4 synthetic questions, each with real, blank and shuffled images


@pytest.fixture
def generated(monkeypatch) -> list:
    """The prompts eval generates answers for (answered "1" without the model, to be quick)."""
    prompts = []

    def fake(model, processor, batch, images, **options):
        prompts.extend(batch)
        return ["1"] * len(batch)

    monkeypatch.setattr(evaluate, "generate_batch", fake)
    return prompts


@pytest.fixture
def model(tiny_model, tmp_path):
    return shutil.copytree(tiny_model, tmp_path / "a" / "m")


def run_eval(model, out, *extra):
    assert main(["eval", str(model), "--data", "synthetic", "--limit", "4", "--no-retention", "--out", str(out),
                 *extra]) == 0


def test_unchanged_model_and_data_reuse_every_answer(model, tmp_path, generated):
    run_eval(model, tmp_path / "eval")
    assert len(generated) == EVERY_ANSWER
    generated.clear()
    run_eval(model, tmp_path / "eval")
    assert generated == []


def test_force_answers_again(model, tmp_path, generated):
    run_eval(model, tmp_path / "eval")
    generated.clear()
    run_eval(model, tmp_path / "eval", "--force")
    assert len(generated) == EVERY_ANSWER


def test_a_model_retrained_in_place_is_asked_again(model, tmp_path, generated):
    run_eval(model, tmp_path / "eval")
    generated.clear()
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes())  # what a new save in place does to the folder: new files
    run_eval(model, tmp_path / "eval")
    assert len(generated) == EVERY_ANSWER


def test_a_model_of_the_same_folder_name_elsewhere_is_another_model(model, tmp_path, generated):
    run_eval(model, tmp_path / "eval")
    generated.clear()
    twin = shutil.copytree(model, tmp_path / "b" / "m")  # same name, same files, same mtimes
    run_eval(twin, tmp_path / "eval")
    assert len(generated) == EVERY_ANSWER


def test_another_seed_of_the_synthetic_set_is_asked_again(model, tmp_path, generated):
    run_eval(model, tmp_path / "eval", "--seed", "1")
    generated.clear()
    run_eval(model, tmp_path / "eval", "--seed", "2")  # same sample ids, other pictures and questions
    assert len(generated) == EVERY_ANSWER
