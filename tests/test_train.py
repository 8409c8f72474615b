"""Training: the loss falls, artifacts are stock checkpoints, bad configs fail early, guards fire."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from transformers import AutoModelForImageTextToText, AutoProcessor

from smvl.cli import main
from smvl.config import ConfigError
from smvl.errors import UserError
from smvl.train import checkpoints
from smvl.train.guards import GuardCallback, TrainingHalted, preflight
from smvl.train.run import load_config, train

FAST = ["--data.synthetic_train", "160", "--data.synthetic_test", "24", "--batch_size", "8", "--grad_accum", "1",
        "--log_every", "2", "--final_eval", "false"]


def quick(tmp_path, name, *extra):
    return load_config(None, FAST + ["--output_dir", str(tmp_path / name), *extra])


def history(run, stage="stage-1-full"):
    last = checkpoints.checkpoints(run / stage)[-1][1]
    return json.loads((last / "trainer_state.json").read_text())["log_history"]


def test_demo_run_learns_and_publishes_a_stock_model(demo_run):
    logs = history(demo_run)
    losses = [h["loss"] for h in logs if "loss" in h]
    assert losses[-1] < 0.3 * losses[0], losses
    assert all(h["samples_per_s"] > 0 and h["tokens_per_s"] > h["samples_per_s"] for h in logs if "loss" in h)
    evals = [h["eval_loss"] for h in logs if "eval_loss" in h]
    assert evals[-1] < evals[0]
    final = demo_run / "final"
    model = AutoModelForImageTextToText.from_pretrained(final)
    AutoProcessor.from_pretrained(final)
    assert model.config.use_cache
    results = json.loads((demo_run / "eval_results.json").read_text())
    assert {"accuracy_with_images", "accuracy_blank_images", "majority_baseline", "n"} <= set(results)
    assert results["n"] == 24
    saved = yaml.safe_load((demo_run / "config.yaml").read_text())
    assert saved["recipe"] == "full" and saved["steps"] == 300
    assert all(checkpoints.is_complete(p) for _, p in checkpoints.checkpoints(demo_run / "stage-1-full"))


def test_connector_recipe_leaves_the_llm_untouched(tmp_path, capsys):
    final = train(quick(tmp_path, "conn", "--recipe", "connector", "--steps", "4", "--lr", "1e-3"))
    spliced = tmp_path / "conn" / "spliced"
    a = AutoModelForImageTextToText.from_pretrained(spliced).state_dict()
    b = AutoModelForImageTextToText.from_pretrained(final).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("model.connector."))
    assert not torch.equal(a["model.connector.modality_projection.proj.weight"],
                           b["model.connector.modality_projection.proj.weight"])
    assert main(["check", str(final)]) == 0
    assert "[PASS] text-only == source LLM" in capsys.readouterr().out


def test_staged_run_chains_stages_and_lora_merges(tmp_path):
    path = tmp_path / "staged.yaml"
    path.write_text(yaml.safe_dump({"stages": [{"recipe": "connector", "lr": 1e-3, "steps": 3},
                                               {"recipe": "lora", "lr": 1e-3, "steps": 3, "lora_r": 4}]}))
    # One evaluation per stage, at its end: with one per step, best-model tracking keeps the first step's checkpoint
    # (LoRA's B still zero after a warm-up step at lr 0) whenever the random model's eval loss does not fall.
    cfg = load_config(str(path), FAST + ["--output_dir", str(tmp_path / "st"), "--eval_every", "3"])
    final = train(cfg)
    stage2 = tmp_path / "st" / "stage-2-lora" / "final"
    assert (stage2 / "adapter" / "adapter_config.json").is_file()
    provenance = json.loads((final / "smvl.json").read_text())
    assert [s["recipe"] for s in provenance["stages"]] == ["connector", "lora"]
    merged = AutoModelForImageTextToText.from_pretrained(final).state_dict()
    assert not any("lora" in k for k in merged)
    first = AutoModelForImageTextToText.from_pretrained(tmp_path / "st" / "stage-1-connector" / "final").state_dict()
    key = "model.text_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(first[key], merged[key])  # the LoRA delta was merged in


@pytest.mark.parametrize("args, message", [
    (["--no_such_key", "1"], "unknown config key"),
    (["--steps", "many"], "steps: expected an integer"),
    (["--data.packing", "maybe"], "packing: expected true/false"),
])
def test_bad_config_values_name_the_key(args, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, args)


def test_recipe_that_trains_nothing_and_foreign_output_folder(tmp_path):
    with pytest.raises(UserError, match="unknown recipe"):
        train(quick(tmp_path, "x", "--recipe", "nothing"))
    train(quick(tmp_path, "mine", "--recipe", "connector", "--steps", "2"))
    with pytest.raises(UserError, match="holds another run.*lr"):
        train(quick(tmp_path, "mine", "--recipe", "connector", "--steps", "2", "--lr", "5e-4"))


def test_cli_reports_config_errors_without_traceback(capsys):
    assert main(["train", "--nope", "1"]) == 2
    assert "unknown config key 'nope'" in capsys.readouterr().err


def test_incomplete_checkpoints_are_never_resumed_from(tmp_path):
    for step, complete in ((10, True), (20, True), (30, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            checkpoints.mark_complete(folder)
    assert checkpoints.last_complete(tmp_path).name == "checkpoint-20"
    assert not (tmp_path / "checkpoint-30").exists()


def test_preflight_catches_a_blind_model(tiny_model):
    from smvl.data.batches.collate import CollateOptions, Encoder, collate
    from smvl.data.batches.pixels import normalise_on_model
    from smvl.data.sources.synthetic import synthetic_samples

    processor = AutoProcessor.from_pretrained(tiny_model)
    model = normalise_on_model(AutoModelForImageTextToText.from_pretrained(tiny_model), processor.image_processor)
    enc = Encoder(processor, CollateOptions())
    batch = collate([enc(s) for s in synthetic_samples("train", 2)], processor.tokenizer.pad_token_id, enc.options)
    assert "preflight" in preflight(model, batch)
    with torch.no_grad():
        model.model.connector.modality_projection.proj.weight.zero_()
    with pytest.raises(TrainingHalted, match="blind model"):
        preflight(model, batch)


def test_guard_stops_on_zero_gradient_and_nan():
    guard = GuardCallback(patience=3)
    guard.observe_grad_norm(0.0, 1)
    guard.observe_grad_norm(0.5, 2)  # a non-zero step resets the count
    guard.observe_grad_norm(0.0, 3)
    guard.observe_grad_norm(0.0, 4)
    with pytest.raises(TrainingHalted, match="gradient norm has been 0 for 3 steps"):
        guard.observe_grad_norm(0.0, 5)
    with pytest.raises(TrainingHalted, match="gradient norm became inf"):
        guard.observe_grad_norm(float("inf"), 6)
    state = type("State", (), {"global_step": 0})()
    with pytest.raises(TrainingHalted, match="loss became nan"):
        guard.on_log(None, state, None, logs={"loss": float("nan")})


def test_zero_gradient_guard_reads_the_trainers_grad_norm_not_param_grads(tmp_path, monkeypatch):
    """Under DeepSpeed ZeRO `p.grad` stays None; the guard must use the norm the Trainer computes. Here the
    parameters do get gradient, but the Trainer's norm says 0: the run must stop after `zero_grad_patience` steps."""
    from transformers import Trainer

    monkeypatch.setattr(Trainer, "_get_grad_norm", lambda self, model, grad_norm=None: torch.tensor(0.0))
    cfg = load_config(None, ["--steps", "10", "--batch_size", "2", "--zero_grad_patience", "2", "--final_eval",
                             "false", "--data.synthetic_train", "16", "--data.synthetic_test", "4",
                             "--output_dir", str(tmp_path / "run")])
    with pytest.raises(TrainingHalted, match="gradient norm has been 0 for 2 steps \\(up to step 2\\)"):
        train(cfg)


def test_tracker_that_is_not_installed_fails_early(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "swanlab" else real(name, *a))
    with pytest.raises(UserError, match="needs the swanlab package"):
        train(quick(tmp_path, "t", "--report_to", "swanlab"))


def test_sample_answers_table():
    from smvl.train.tracking import table

    rows = [{"question": "图中有几个物体？", "with_images": "三个", "reference": "三个", "blank_images": "一个"}]
    assert table(rows).splitlines()[2] == "| 图中有几个物体？ | 三个 | 三个 | 一个 |"


def test_shipped_configs_load_and_demo_yaml_is_the_default():
    from pathlib import Path

    from smvl.train.config import TrainConfig

    root = Path(__file__).resolve().parents[1] / "configs"
    assert load_config(str(root / "demo.yaml"), []) == TrainConfig()
    staged = load_config(str(root / "staged.yaml"), [])
    assert [(s.recipe, s.lr) for s in staged.resolved_stages()] == [
        ("connector", 1e-4), ("vision+connector", 5e-5), ("full", 1e-5)]
    cocoqa = load_config(str(root / "cocoqa.yaml"), ["--steps", "10"])
    assert (cocoqa.recipe, cocoqa.lr, cocoqa.batch_size, cocoqa.grad_accum, cocoqa.steps) == ("connector", 1e-4, 1, 4, 10)
    assert load_config(str(root / "full.yaml"), []).data.max_samples == 60000
    zh = load_config(str(root / "zh.yaml"), [])
    assert [(s.recipe, s.train) for s in zh.resolved_stages()] == [("connector", "data/captions_zh"), ("full", None)]
    assert zh.data.train == "data/vqa_zh.jsonl*1 + data/the_cauldron*1"


def test_the_demo_defaults_are_the_ones_the_readme_measured():
    """README's "What the demo shows" (time, accuracies) was measured with these values: changing one means
    measuring the demo again and updating those figures."""
    from smvl.splice.presets import TINY_VERSION, get_preset
    from smvl.train.config import TrainConfig

    cfg = TrainConfig()
    d = cfg.data
    assert (cfg.model.preset, cfg.model.scale_factor, d.train, d.synthetic_train, d.synthetic_test,
            d.synthetic_scenes, d.image_splitting, d.packing) == ("tiny", None, "synthetic", 24000, 200, 0.5, None, True)
    lr = (cfg.lr.all, cfg.lr.connector, cfg.lr.vision, cfg.lr.text)
    assert (cfg.recipe, lr, cfg.steps, cfg.batch_size, cfg.grad_accum, cfg.warmup_ratio, cfg.lr_scheduler) == (
        "full", (None, 3e-3, 1e-2, 1e-3), 3200, 16, 1, 0.1, "cosine")
    assert (cfg.adam_beta2, cfg.weight_decay, cfg.max_grad_norm, cfg.seed) == (0.95, 0.01, 1.0, 42)
    assert TINY_VERSION == "tiny-v6"  # its tokenizer and weights
    assert cfg.final_eval_samples == 200
    tiny = get_preset("tiny")
    assert tiny.layout(tiny.vision, tiny.text) == (4, False)  # the demo's one tile of 4 tokens


def test_every_speed_switch_off_still_trains(tmp_path):
    """Padded batches, the model's own full-logit loss and eager attention: the path the benchmark's reference
    takes, still a working training setup."""
    run = tmp_path / "slow"
    train(quick(tmp_path, "slow", "--steps", "12", "--data.packing", "false", "--labelled_loss", "false",
                "--model.attn_implementation", "eager"))
    losses = [h["loss"] for h in history(run) if "loss" in h]
    assert losses[-1] < losses[0], losses


def text_only_file(path, n=40):
    lines = [json.dumps({"messages": [{"role": "user", "content": f"你好{i}"}, {"role": "assistant", "content": "你好！"}]},
                        ensure_ascii=False) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_text_only_mixing_with_a_frozen_llm_trains_and_says_why(tmp_path, capsys):
    """One sample per step, half of them text-only: with the LLM frozen such a step has no gradient path (backward
    raised) and the preflight saw no image. Text-only samples are left out of such a stage, said once."""
    text = text_only_file(tmp_path / "text.jsonl", 70)
    final = train(quick(tmp_path, "conn", "--recipe", "connector", "--steps", "6", "--batch_size", "1",
                        "--eval_every", "6", "--save_every", "6", "--data.synthetic_test", "4",
                        "--data.text_only", str(text), "--data.text_only_ratio", "0.5"))
    assert (final / "config.json").is_file()
    assert capsys.readouterr().out.count("text-only samples are left out of this stage") == 1
    # The text source's 64 held-out records are evaluated beside the images: does the LLM keep its text?
    (text_loss,) = [h["eval_text_loss"] for h in history(tmp_path / "conn", "stage-1-connector")
                    if "eval_text_loss" in h]
    assert text_loss > 0


def test_a_text_only_batch_still_gives_vision_and_connector_a_gradient(tiny_model, tmp_path):
    """With the LLM training, a batch without images must still reach the vision tower and connector (at zero
    effect): DDP waits for a gradient of every trainable parameter on every rank."""
    from smvl.data.batches.collate import Encoder, collate
    from smvl.data.sources.jsonl import read_chat_file
    from smvl.data.samples.skips import SkipLog
    from smvl.train.config import StageConfig
    from smvl.train.data import build_streams
    from smvl.train.guards import GuardCallback
    from smvl.train.trainer import StreamTrainer, load_stage_model, training_args

    cfg = quick(tmp_path, "t", "--recipe", "full", "--labelled_loss", "true")
    stage = StageConfig(recipe="full", lr=1e-3, steps=1)
    processor = AutoProcessor.from_pretrained(tiny_model)
    streams, _ = build_streams(cfg, processor)
    train_stream, eval_stream = streams.train, streams.eval
    model = load_stage_model(tiny_model, stage, cfg, processor)
    trainer = StreamTrainer(model=model, args=training_args(cfg, stage, tmp_path / "s"), train_stream=train_stream,
                            eval_stream=eval_stream, guard=GuardCallback(20), loss_chunk=cfg.loss_chunk)
    encoder = Encoder(processor, train_stream.options)
    samples = list(read_chat_file(text_only_file(tmp_path / "t.jsonl", 2), SkipLog()))
    batch = collate([encoder(s) for s in samples], processor.tokenizer.pad_token_id, encoder.options)
    assert "pixel_values" not in batch
    model.train()
    trainer.compute_loss(model, batch).backward()
    for part in (model.model.connector, model.model.vision_model):
        assert all(p.grad is not None and not p.grad.any() for p in part.parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.model.text_model.parameters())


@pytest.mark.parametrize("args, message", [
    (["--data.train", "data/the_cauldorn"], "data.train: data source data/the_cauldorn does not exist"),
    (["--data.train", "synthtic"], "data.train: unknown data source 'synthtic'"),
    (["--data.eval", "held.jsonl"], "data.eval: data source held.jsonl does not exist"),
    (["--model.preset", "smolvlm2-256m+qwen3-6b"], "unknown preset 'smolvlm2-256m+qwen3-6b'"),
    (["--data.labels", "answers"], "data.labels='answers'; expected one of assistant, all"),
    (["--data.padding", "max"], "data.padding='max'"),
    (["--data.images", "every"], "data.images='every'"),
    (["--data.text_only_ratio", "0.2"], "names no source"),
])
def test_user_errors_are_one_line_before_any_splice(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *args, "--output_dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (out / "spliced").exists()


def test_cauldron_subsets_and_weights_are_checked_before_any_splice(tmp_path, capsys):
    from test_data_sources import row, write_subset

    root = tmp_path / "c"
    write_subset(root, "cocoqa", [row()])
    write_subset(root, "ai2d", [row()])
    broken = tmp_path / "broken.json"
    broken.write_text('[{"messages": ')
    cases = [(["--data.subsets", "cocoqa,vqav2"], "has no subset folder(s) vqav2 (it has ai2d, cocoqa)"),
             (["--data.weights", "cocoqa:one"], "mixture weight 'cocoqa:one' is not name:number"),
             (["--data.weights", "cocoqa:1,docvqa:2"], "mixture weights name unknown subset(s): docvqa")]
    for args, message in cases:
        assert main(["train", "--data.train", str(root), *args, "--output_dir", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["data", "inspect", str(broken), "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "broken.json is not valid JSON" in err and err.count("\n") == 1, err
