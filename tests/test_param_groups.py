"""Per-component learning rates: the config keys reach the optimizer's parameter groups, and the schedule keeps
their ratios."""

from __future__ import annotations

import pytest
from transformers import AutoModelForImageTextToText, TrainingArguments

from smvl.splice.recipes import apply_recipe
from smvl.train.guards import GuardCallback
from smvl.train.config import StageConfig
from smvl.train.param_groups import as_recorded, base_lr, component_lrs, group_lines, lr_of, owners
from smvl.train.run import load_config
from smvl.train.trainer import StreamTrainer


def trainer_for(model_dir, tmp_path, lrs, recipe="full"):
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    apply_recipe(model, recipe)
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, weight_decay=0.01, max_steps=10,
                             warmup_steps=2, lr_scheduler_type="cosine", use_cpu=True, report_to=[])
    return StreamTrainer(model=model, args=args, train_stream=None, eval_stream=None, guard=GuardCallback(20),
                         lrs=lrs), model


def lr_by_component(optimizer, model) -> dict[str, set[float]]:
    owner, seen = owners(model), {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            seen.setdefault(owner[id(p)], set()).add(group["lr"])
    return seen


def test_command_line_component_lrs_reach_the_optimizer_groups(tiny_model, tmp_path):
    cfg = load_config(None, ["--lr", "1e-3", "--lr.vision", "4e-3", "--lr.connector=2e-3"])
    lrs = component_lrs(cfg.resolved_stages()[0].lr)
    assert lrs == {"vision": 4e-3, "connector": 2e-3}
    trainer, model = trainer_for(tiny_model, tmp_path, lrs)
    optimizer = trainer.create_optimizer()
    assert lr_by_component(optimizer, model) == {"vision": {4e-3}, "connector": {2e-3}, "text": {1e-3}}
    # every trainable parameter is in exactly one group, and the no-decay split survives
    params = [p for g in optimizer.param_groups for p in g["params"]]
    assert len(params) == len({id(p) for p in params}) == len({id(p) for p in model.parameters() if p.requires_grad})
    assert {g["weight_decay"] for g in optimizer.param_groups} == {0.01, 0.0}
    trainer.create_scheduler(10, optimizer)
    for _ in range(5):
        optimizer.step()
        trainer.lr_scheduler.step()
    now = lr_by_component(optimizer, model)
    assert now["vision"].pop() / now["text"].pop() == pytest.approx(4.0)


def test_stages_take_their_own_component_lrs_and_unnamed_parts_keep_the_stage_default():
    cfg = load_config(None, ["--stages", "[{recipe: connector, lr: 1e-4}, {recipe: full, lr: {all: 1e-5, text: 2e-6}},"
                                         " {recipe: full, lr: {vision: 5e-6}}]"])
    assert [component_lrs(s.lr) for s in cfg.resolved_stages()] == [{}, {"text": 2e-6}, {"vision": 5e-6}]
    assert base_lr(cfg.resolved_stages()[2].lr) == StageConfig().lr


def test_a_yaml_lr_stays_the_lr_of_the_parts_the_command_line_does_not_name(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-4\n")  # YAML 1.1 reads this as text, not a number
    cfg = load_config(path, ["--lr.vision", "5e-6"])
    assert base_lr(cfg.lr) == 1e-4 and component_lrs(cfg.lr) == {"vision": 5e-6}
    assert as_recorded(cfg.lr) == {"connector": 1e-4, "vision": 5e-6, "text": 1e-4}
    assert load_config(path, ["--lr", "3e-4"]).lr == 3e-4


def test_the_parameter_printout_shows_each_components_lr(tiny_model):
    model = AutoModelForImageTextToText.from_pretrained(tiny_model)
    apply_recipe(model, "vision+connector")
    lines = group_lines(model, load_config(None, ["--lr", "1e-3", "--lr.vision", "4e-3"]).lr)
    assert [line.split(":")[0].strip() for line in lines] == ["vision", "connector", "text"]
    assert lines[0].endswith("lr 0.004") and lines[1].endswith("lr 0.001") and lines[2].endswith("frozen")


def test_without_component_lrs_the_optimizer_is_the_trainers_own(tiny_model, tmp_path):
    trainer, model = trainer_for(tiny_model, tmp_path, {})
    optimizer = trainer.create_optimizer()
    assert len(optimizer.param_groups) == 2 and lr_by_component(optimizer, model) == {
        "vision": {1e-3}, "connector": {1e-3}, "text": {1e-3}}


def test_a_non_positive_component_lr_is_refused_before_any_work(tmp_path, capsys):
    from smvl.cli import main

    assert main(["train", "--lr.text", "0", "--output_dir", str(tmp_path / "run")]) == 2
    assert "stage 1: lr.text must be positive (got 0.0)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_default_rates_keep_the_parts_the_command_line_does_not_name():
    default = load_config(None, []).lr
    assert component_lrs(default) and default.vision > default.connector > default.text  # the demo's
    one = load_config(None, ["--lr.vision", "5e-6"]).lr
    assert (one.vision, one.connector, one.text) == (5e-6, default.connector, default.text)
    assert load_config(None, ["--lr", "1e-4"]).lr == 1e-4
    named_all = load_config(None, ["--lr", "1e-3", "--lr.vision", "4e-3"]).lr  # `all` names every other part
    assert {part: lr_of(named_all, part) for part in ("connector", "text")} == {"connector": 1e-3, "text": 1e-3}


def test_adam_beta2_reaches_the_optimizer(tiny_model, tmp_path):
    from smvl.train.trainer import training_args

    assert load_config(None, []).adam_beta2 == 0.95  # the demo's
    cfg = load_config(None, ["--adam_beta2", "0.9", "--lr", "1e-3"])
    args = training_args(cfg, cfg.resolved_stages()[0], tmp_path / "s")
    assert args.adam_beta2 == 0.9
    trainer, _ = trainer_for(tiny_model, tmp_path, {})
    trainer.args = args
    trainer.optimizer = None
    assert {g["betas"][1] for g in trainer.create_optimizer().param_groups} == {0.9}
