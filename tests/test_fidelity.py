"""Fidelity against the real Qwen3-0.6B and SmolVLM2-256M files in ../shared/assets (skipped without them)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor, SmolVLMForConditionalGeneration

from smvl.splice.check import run_checks
from smvl.splice.model import spliced_config, splice
from smvl.splice.processor import build_processor
from smvl.splice.recipes import apply_recipe, count_params, format_counts


@pytest.fixture(scope="module")
def real_processor(assets):
    vlm = AutoConfig.from_pretrained(assets / "smolvlm2-256m-video-instruct")
    return build_processor(assets / "smolvlm2-256m-video-instruct", assets / "qwen3-0.6b", vlm.vision_config, 4), vlm


def test_real_token_ids(real_processor):
    processor, _ = real_processor
    tok = processor.tokenizer
    assert processor.image_token_id == 151655 and processor.image_token == "<|image_pad|>"
    assert tok.eos_token_id == 151645 and tok.pad_token_id == 151643
    assert processor.image_seq_len == 64
    assert len(tok) == 151669  # nothing added to the vocabulary


def test_real_parameter_counts_match_the_reference(real_processor, assets):
    processor, vlm = real_processor
    llm = AutoConfig.from_pretrained(assets / "qwen3-0.6b")
    config = spliced_config(vlm, llm, processor.tokenizer, 4, "bf16")
    assert config.text_config.vocab_size == 151936 and config.tie_word_embeddings
    with torch.device("meta"):
        model = SmolVLMForConditionalGeneration(config)
    apply_recipe(model, "connector")
    trainable, total = count_params(model)
    assert (trainable, total) == (12_582_912, 695_065_856)
    assert format_counts(trainable, total) == "trainable params: 12.00M || all params: 662.87M || trainable%: 1.81"


def test_real_image_layout(real_processor):
    processor, _ = real_processor
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "图中有什么动物？"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    enc = processor(text=text, images=[Image.new("RGB", (1024, 768), (0, 128, 255))], return_tensors="pt")
    ids = enc["input_ids"][0]
    # longest edge resized to 2048 -> 4 x 3 tiles of 512 plus the global image, 64 tokens each
    assert enc["pixel_values"].shape[1] == 13
    assert int((ids == 151655).sum()) == 13 * 64
    decoded = processor.tokenizer.decode(ids)
    assert decoded.count("<|vision_start|>") == 13 * 2 - 12 and "<row_3_col_4>" in decoded
    assert decoded.startswith("<|im_start|>user\n<|vision_start|><row_1_col_1><|image_pad|>")


def test_splice_of_real_layout_checkpoints(real_fake_sources, tmp_path):
    out = splice(str(real_fake_sources / "vision"), str(real_fake_sources / "text"), tmp_path / "m", dtype="bf16")
    model = AutoModelForImageTextToText.from_pretrained(out)
    processor = AutoProcessor.from_pretrained(out)
    assert processor.image_token_id == model.config.image_token_id == 151655
    state = model.state_dict()
    with safe_open(real_fake_sources / "text" / "model.safetensors", "pt") as f:
        for name in ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.norm.weight"]:
            assert torch.equal(state["model.text_model." + name[len("model."):]], f.get_tensor(name))
    with safe_open(real_fake_sources / "vision" / "model.safetensors", "pt") as f:
        name = "model.vision_model.encoder.layers.0.mlp.fc1.weight"
        assert torch.equal(state[name], f.get_tensor(name))
    assert model.lm_head.weight.data_ptr() == model.model.text_model.embed_tokens.weight.data_ptr()
    results, _ = run_checks(out)
    assert all(r.ok for r in results), [r.line() for r in results]


SPLICE_SCRIPT = """
import resource, sys
from smvl.splice.model import splice
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
splice(sys.argv[1], sys.argv[2], sys.argv[3], dtype="bf16")
print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_splice_peak_memory_stays_near_one_copy(real_fake_sources, tmp_path):
    text_bytes = sum(p.stat().st_size for p in (real_fake_sources / "text").glob("*.safetensors"))
    vision_bytes = sum(p.stat().st_size for p in (real_fake_sources / "vision").glob("*.safetensors"))
    run = subprocess.run(
        [sys.executable, "-c", "import torch, transformers, smvl.splice.model\n" + SPLICE_SCRIPT,
         str(real_fake_sources / "vision"), str(real_fake_sources / "text"), str(tmp_path / "m")],
        capture_output=True, text=True, check=True,
    )
    base_kb, peak_kb = map(int, run.stdout.split()[-2:])
    grown = (peak_kb - base_kb) * 1024
    assert grown < 1.5 * (text_bytes + vision_bytes), (grown, text_bytes, vision_bytes)
