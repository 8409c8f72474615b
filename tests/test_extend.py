"""A finished run goes on for more steps with --resume_from RUN; anything but the last stage's steps growing is
still another run."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from safetensors.torch import load_file

from smvl.errors import UserError
from smvl.train import checkpoints
from smvl.train.run import load_config, train

FAST = ["--data.synthetic_train", "64", "--data.synthetic_test", "8", "--batch_size", "4", "--log_every", "2",
        "--final_eval", "false", "--recipe", "connector", "--lr", "1e-3", "--save_every", "2", "--eval_every", "2"]


def test_a_finished_run_is_extended_from_its_last_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    train(load_config(None, FAST + ["--steps", "4", "--output_dir", str(run)]))
    before = load_file(run / "final" / "model.safetensors")
    with pytest.raises(UserError, match="holds another run.*steps"):
        train(load_config(None, FAST + ["--steps", "8", "--output_dir", str(run)]))
    capsys.readouterr()

    cfg = load_config(None, ["--resume-from", str(run), "--steps=8"])  # the rest comes from the run's config.yaml
    assert (cfg.output_dir, cfg.recipe, cfg.data.synthetic_train) == (str(run), "connector", 64)
    train(cfg)
    assert f"resuming from {run / 'stage-1-connector' / 'checkpoint-4'}" in capsys.readouterr().out
    last = checkpoints.last_complete(run / "stage-1-connector")
    assert last.name == "checkpoint-8"
    assert json.loads((last / "trainer_state.json").read_text())["global_step"] == 8
    assert json.loads((run / "final" / "smvl.json").read_text())["stages"][-1]["steps"] == 8
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["steps"] == 8 and saved["resume_from"] is None
    key = "model.connector.modality_projection.proj.weight"
    assert not (load_file(run / "final" / "model.safetensors")[key] == before[key]).all()

    for args, message in [(["--steps", "6"], "steps can only grow \\(the run has 8, asked 6\\)"),
                          (["--steps", "12", "--lr", "1e-2"], "holds another run \\(config differs in: lr\\)"),
                          (["--steps", "12", "--output_dir", str(tmp_path / "elsewhere")], "in its own folder")]:
        with pytest.raises(UserError, match=message):
            train(load_config(None, ["--resume_from", str(run), *args]))
    with pytest.raises(UserError, match="holds no run"):
        load_config(None, ["--resume_from", str(tmp_path / "elsewhere")])

    for _, checkpoint in checkpoints.checkpoints(run / "stage-1-connector"):  # deleted to save space
        shutil.rmtree(checkpoint)
    train(load_config(None, ["--resume_from", str(run)]))  # nothing more to do: no checkpoint needed
    with pytest.raises(UserError, match="no complete checkpoint to continue from"):
        train(load_config(None, ["--resume_from", str(run), "--steps", "12"]))


def test_only_the_last_stage_of_a_staged_run_may_grow():
    from smvl.train.extend import extension_keys

    stages = [{"recipe": "connector", "steps": 3}, {"recipe": "full", "steps": 5}]
    longer = [stages[0], {"recipe": "full", "steps": 9}]
    assert extension_keys({"stages": stages}, {"stages": longer}) == {"stages"}
    assert extension_keys({"stages": stages}, {"stages": [{"recipe": "connector", "steps": 4}, stages[1]]}) == set()
    assert extension_keys({"stages": stages}, {"stages": [stages[0], {"recipe": "lora", "steps": 9}]}) == set()
    assert extension_keys({"steps": 4}, {"steps": 8}) == {"steps"}
