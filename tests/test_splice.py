"""Splicing: the result is a stock transformers checkpoint holding exactly the sources' tensors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor

from smvl.cli import main
from smvl.splice.model import splice
from smvl.splice.sources import SourceError


def load(folder):
    return AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval(), AutoProcessor.from_pretrained(folder)


def test_loads_with_stock_auto_classes_and_holds_source_tensors(tiny_model, tiny_sources):
    model, processor = load(tiny_model)
    assert type(model).__name__ == "SmolVLMForConditionalGeneration"
    assert type(model.model.text_model).__name__ == "Qwen3Model"
    assert model.config.text_config.model_type == "qwen3"
    state = model.state_dict()
    text = load_file(tiny_sources / "text" / "model.safetensors")
    for name, tensor in text.items():
        assert torch.equal(state["model.text_model." + name.removeprefix("model.")], tensor), name
    vision = load_file(tiny_sources / "vision" / "model.safetensors")
    vision_keys = [k for k in vision if k.startswith("model.vision_model.")]
    assert vision_keys
    for name in vision_keys:
        assert torch.equal(state[name], vision[name]), name
    assert model.lm_head.weight.data_ptr() == model.model.text_model.embed_tokens.weight.data_ptr()


def test_ids_come_from_the_tokenizer(tiny_model):
    model, processor = load(tiny_model)
    tok = processor.tokenizer
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>") == processor.image_token_id
    assert model.generation_config.eos_token_id[0] == tok.convert_tokens_to_ids("<|im_end|>")
    assert model.generation_config.pad_token_id == tok.pad_token_id == model.config.text_config.pad_token_id
    assert processor.image_seq_len == (64 // 8 // 2) ** 2
    assert len(tok) <= model.config.text_config.vocab_size


def test_save_and_reload_gives_the_same_logits(tiny_model, tmp_path):
    from PIL import Image

    from smvl.splice.check import image_inputs

    model, processor = load(tiny_model)
    inputs = image_inputs(processor, Image.new("RGB", (100, 70), (10, 200, 30)))
    with torch.no_grad():
        before = model(**inputs).logits
    model.save_pretrained(tmp_path / "again")
    processor.save_pretrained(tmp_path / "again")
    again, _ = load(tmp_path / "again")
    with torch.no_grad():
        assert torch.equal(again(**inputs).logits, before)


def test_check_passes_on_a_fresh_splice(tiny_model, capsys):
    assert main(["check", str(tiny_model)]) == 0
    out = capsys.readouterr().out
    assert "[PASS] image reaches the LM" in out and "[PASS] text-only == source LLM" in out
    assert "trainable params:" in out


def test_check_catches_a_wrong_image_token_id(tiny_model, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    config = json.loads((broken / "config.json").read_text())
    config["image_token_id"] = config["image_token_id"] - 1  # the reference recipe's silent failure
    (broken / "config.json").write_text(json.dumps(config))
    assert main(["check", str(broken)]) == 1
    assert "[FAIL] ids agree" in capsys.readouterr().out


def test_bf16_splice_and_dtype(tiny_sources, tmp_path):
    out = splice(str(tiny_sources / "vision"), str(tiny_sources / "text"), tmp_path / "bf16", dtype="bf16")
    model = AutoModelForImageTextToText.from_pretrained(out)
    assert model.dtype == torch.bfloat16


@pytest.mark.parametrize("case", ["missing", "not-smolvlm", "no-template", "scale", "non-empty-out", "file-as-source"])
def test_bad_sources_fail_early_with_one_sentence(case, tiny_sources, tmp_path):
    vision, text, out, kwargs = tiny_sources / "vision", tiny_sources / "text", tmp_path / "out", {}
    if case == "missing":
        vision = tmp_path / "nowhere"
    elif case == "not-smolvlm":
        vision = text
    elif case == "no-template":
        text = tmp_path / "text"
        shutil.copytree(tiny_sources / "text", text)
        (text / "chat_template.jinja").unlink()
        config = json.loads((text / "tokenizer_config.json").read_text())
        config.pop("chat_template", None)
        (text / "tokenizer_config.json").write_text(json.dumps(config))
    elif case == "scale":
        kwargs["scale_factor"] = 3
    elif case == "non-empty-out":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    elif case == "file-as-source":
        vision = tiny_sources / "vision" / "config.json"
    with pytest.raises(SourceError) as err:
        splice(str(vision), str(text), out, **kwargs)
    message = str(err.value)
    assert "\n" not in message and len(message) < 300
    expected = {"missing": "neither an existing folder", "not-smolvlm": "SmolVLM or Idefics3",
                "no-template": "no chat template", "scale": "does not divide", "non-empty-out": "not empty",
                "file-as-source": "is a file"}[case]
    assert expected in message
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    if case == "non-empty-out":
        assert (out / "keep.txt").read_text() == "mine"
    else:
        assert not out.exists()


def test_cli_splice_reports_errors_without_traceback(tmp_path, capsys):
    assert main(["splice", "--vision", str(tmp_path / "x"), "--text", str(tmp_path / "y"), "--out", str(tmp_path / "o")]) == 2
    assert "error:" in capsys.readouterr().err


def test_the_tiny_preset_splices_the_demo_layout_one_tile_of_four_tokens(tmp_path):
    from transformers import AutoConfig, AutoProcessor

    assert main(["splice", "--preset", "tiny", "--out", str(tmp_path / "demo")]) == 0
    processor = AutoProcessor.from_pretrained(tmp_path / "demo")
    assert AutoConfig.from_pretrained(tmp_path / "demo").scale_factor == 4 and processor.image_seq_len == 4
    assert processor.image_processor.do_image_splitting is False
    assert main(["splice", "--preset", "tiny", "--scale-factor", "2", "--out", str(tmp_path / "s2")]) == 0
    assert AutoProcessor.from_pretrained(tmp_path / "s2").image_seq_len == 16  # an explicit factor still wins
