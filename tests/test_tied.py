"""Loading the best checkpoint at the end of a run (Qwen3's lm_head tied to the embedding) warns about nothing."""

from __future__ import annotations

from transformers import AutoModelForImageTextToText

from smvl.train.run import load_config, train
from smvl.train.tied import truly_missing


def test_end_of_run_load_of_a_tied_model_does_not_report_lm_head_missing(tmp_path, monkeypatch):
    import transformers.trainer

    warnings = []
    monkeypatch.setattr(transformers.trainer.logger, "warning", lambda msg, *a, **k: warnings.append(str(msg)))
    train(load_config(None, ["--data.synthetic_train", "32", "--data.synthetic_test", "8", "--batch_size", "4",
                             "--steps", "4", "--save_every", "2", "--eval_every", "2", "--final_eval", "false",
                             "--recipe", "connector", "--output_dir", str(tmp_path / "run")]))
    assert not [w for w in warnings if "missing keys" in w], warnings


def test_only_keys_no_loaded_alias_fills_are_missing(tiny_model):
    model = AutoModelForImageTextToText.from_pretrained(tiny_model)
    head, embedding = "lm_head.weight", "model.text_model.embed_tokens.weight"
    assert model.lm_head.weight is model.get_input_embeddings().weight
    assert truly_missing(model, [head]) == []
    assert truly_missing(model, [head, embedding]) == [head, embedding]
    connector = "model.connector.modality_projection.proj.weight"
    assert truly_missing(model, [head, connector]) == [connector]
