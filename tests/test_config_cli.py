"""The command line of `smvl train`: overrides read as argparse reads them, converted by the field's type only."""

from __future__ import annotations

import pytest

from smvl.config import ConfigError
from smvl.train.run import load_config


@pytest.mark.parametrize("args", [
    ["--output-dir=runs/my-run", "--lr=1e-4", "--data.max-length=512"],
    ["--output-dir", "runs/my-run", "--lr", "1e-4", "--data.max_length", "512"],
    ["--output_dir=runs/my-run", "--lr=0.0001", "--max_length=512"],
])
def test_equals_and_space_forms_agree_and_values_keep_their_dashes(args):
    cfg = load_config(None, args)
    assert (cfg.output_dir, cfg.lr, cfg.data.max_length) == ("runs/my-run", 1e-4, 512)


def test_string_fields_keep_the_text_as_typed():
    cfg = load_config(None, ["--run_name", "on", "--output_dir", "010", "--data.eval=yes.jsonl", "--bf16", "true"])
    assert (cfg.run_name, cfg.output_dir, cfg.data.eval, cfg.bf16) == ("on", "010", "yes.jsonl", "true")


def test_numbers_booleans_and_nulls_follow_the_field_type():
    cfg = load_config(None, ["--steps", "010", "--data.packing=off", "--eval_every", "null", "--final_eval",
                             "--data.holdout", "0.1", "--model.preset=none"])
    assert cfg.steps == 10 and cfg.data.packing is False and cfg.eval_every is None and cfg.final_eval is True
    assert cfg.data.holdout == 0.1 and cfg.model.preset is None
    with pytest.raises(ConfigError, match="steps: expected an integer"):
        load_config(None, ["--steps=1.5"])


def test_stages_are_given_as_yaml():
    cfg = load_config(None, ["--stages", "[{recipe: connector, steps: 3}, {recipe: lora, lr: 1e-3}]"])
    assert [(s.recipe, s.steps, s.lr) for s in cfg.stages] == [("connector", 3, 1e-4), ("lora", 200, 1e-3)]


def test_train_help_lists_every_key_with_type_default_and_comment(capsys):
    from smvl.cli import main
    from smvl.config_help import key_rows
    from smvl.train.config import TrainConfig

    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert len(key_rows(TrainConfig)) > 50 and {k for k, *_ in key_rows(TrainConfig)} <= set(rows)
    assert rows["data.max_length"].split()[1:3] == ["int", "1024"]
    assert rows["eval_every"].split()[1:6] == ["int", "|", "None", "null", "default:"]
    assert rows["loss_chunk"].endswith("rows of logits at a time in labelled_loss (256 x 151,936 fp32 = 156 MB)")
    # a comment continued on the next line, and one written above its field
    assert rows["data.pack_tokens"].endswith("(batch_size then only sizes the length-grouping buffer); None: batch_size "
                                             "samples per step")
    assert "auto: flash-attention-2 where installed" in rows["model.attn_implementation"]


def test_data_inspect_measures_at_trainings_default_max_length(capsys):
    from smvl.cli import build_parser, main
    from smvl.train.config import DataConfig

    assert build_parser().parse_args(["data", "inspect", "synthetic"]).max_length == DataConfig().max_length
    assert main(["data", "inspect", "synthetic", "--limit", "4"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith(f"at max_length {DataConfig().max_length} ==")
