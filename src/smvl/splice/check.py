"""Invariants of a spliced (or trained) model folder, each a named pass/fail with one sentence of evidence."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from smvl.splice.model import PROVENANCE
from smvl.splice.processor import image_seq_len
from smvl.splice.recipes import RECIPES, apply_recipe, count_params, format_counts
from smvl.splice.sources import load_text_source

TEXT_PROMPTS = ["你好，请介绍一下你自己。", "What is 2+2?", "把“猫”翻译成英文。"]


@dataclass
class Result:
    name: str
    ok: bool | None  # None: skipped
    detail: str

    def line(self) -> str:
        mark = {True: "PASS", False: "FAIL", None: "SKIP"}[self.ok]
        return f"[{mark}] {self.name}: {self.detail}"


def check_ids(model, processor) -> Result:
    config, tok, gen = model.config, processor.tokenizer, model.generation_config
    problems = []
    image_id = tok.convert_tokens_to_ids(processor.image_token)
    for where, value in [
        ("processor.image_token_id", processor.image_token_id),
        ("model.model.image_token_id", model.model.image_token_id),
        ("tokenizer", image_id),
    ]:
        if value != config.image_token_id:
            problems.append(f"image token id {value} in {where} != config {config.image_token_id}")
    eos = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    if tok.eos_token_id not in eos:
        problems.append(f"tokenizer eos {tok.eos_token_id} not in generation_config eos {eos}")
    if config.text_config.eos_token_id != tok.eos_token_id:
        problems.append(f"text_config eos {config.text_config.eos_token_id} != tokenizer eos {tok.eos_token_id}")
    if gen.pad_token_id != tok.pad_token_id:
        problems.append(f"generation_config pad {gen.pad_token_id} != tokenizer pad {tok.pad_token_id}")
    if len(tok) > config.text_config.vocab_size:
        problems.append(f"tokenizer has {len(tok)} tokens but vocab_size is {config.text_config.vocab_size}")
    seq = image_seq_len(config.vision_config, config.scale_factor)
    if processor.image_seq_len != seq:
        problems.append(f"processor image_seq_len {processor.image_seq_len} != {seq} from the vision config")
    for attr in ("fake_image_token", "global_image_token", "image_token"):
        token = getattr(processor, attr)
        if tok.convert_tokens_to_ids(token) in (None, tok.unk_token_id) or len(tok.tokenize(token)) != 1:
            problems.append(f"{attr} {token!r} is not a single token of the tokenizer")
    if problems:
        return Result("ids agree", False, "; ".join(problems))
    return Result(
        "ids agree",
        True,
        f"image {config.image_token_id} ({processor.image_token}), eos {tok.eos_token_id}, pad {tok.pad_token_id}, "
        f"vocab {config.text_config.vocab_size}, {seq} tokens per tile",
    )


def probe_images(size: int) -> list[Image.Image]:
    """Two images that differ everywhere (neither all mid-grey: SmolVLM drops all-zero tiles as padding)."""
    gradient = Image.linear_gradient("L").resize((size, size)).convert("RGB")
    return [gradient, Image.new("RGB", (size, size), (200, 30, 30))]


def image_inputs(processor, image: Image.Image, question: str = "图中有什么？"):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(text=text, images=[image], return_tensors="pt")


def check_image_reaches_lm(model, processor) -> list[Result]:
    size = model.config.vision_config.image_size
    a, b = (image_inputs(processor, img) for img in probe_images(size))
    text_pos = a["input_ids"][0] != model.config.image_token_id
    text_pos[: int((~text_pos).nonzero()[-1]) + 1] = False  # only positions after the last image token
    with torch.no_grad():
        la, lb = model(**a).logits[0, text_pos], model(**b).logits[0, text_pos]
    diff = (la - lb).abs().max().item()
    sees = Result("image reaches the LM", diff > 1e-6, f"max logit change at text positions when the image changes: {diff:.3g}")

    model.zero_grad(set_to_none=True)
    connector = model.model.connector
    flags = [p.requires_grad for p in connector.parameters()]
    connector.requires_grad_(True)
    logits = model(**a).logits[0, text_pos]
    logits.float().logsumexp(-1).mean().backward()
    grad = sum(p.grad.abs().sum().item() for p in connector.parameters() if p.grad is not None)
    for p, flag in zip(connector.parameters(), flags):
        p.requires_grad_(flag)
    model.zero_grad(set_to_none=True)
    return [sees, Result("connector gets gradient", grad > 0, f"sum |grad| of the connector: {grad:.3g}")]


def check_text_matches_source(model, processor, folder: Path, text_source: str | None) -> Result:
    name = "text-only == source LLM"
    provenance = json.loads((folder / PROVENANCE).read_text()) if (folder / PROVENANCE).is_file() else {}
    stages = provenance.get("stages", [])
    if any(RECIPES.get(s.get("recipe"), {}).get("text") != "frozen" for s in stages):
        return Result(name, None, "the LLM was trained, so drift is expected (see `smvl eval` for retention)")
    source = text_source or provenance.get("text_source")
    if not source:
        return Result(name, None, "no text source recorded in smvl.json; pass --text-source")
    llm, said = load_text_source(source)
    if llm is None:
        return Result(name, None, said)
    worst = 0.0
    with torch.no_grad():
        for prompt in TEXT_PROMPTS:
            ids = processor.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt",
                return_dict=True,
            )["input_ids"]
            source_logits = llm(input_ids=ids).logits
            # --add-tokens grows the vocabulary (rounded up to 64 rows); those rows have no source to match.
            ours = model(input_ids=ids).logits[..., : source_logits.shape[-1]]
            worst = max(worst, (ours - source_logits).abs().max().item())
    return Result(name, worst <= 1e-4, f"max |logit difference| over {len(TEXT_PROMPTS)} prompts: {worst:.2e} (fp32)")


def param_lines(model) -> list[str]:
    lines = []
    for recipe in ("connector", "vision+connector", "full"):
        apply_recipe(model, recipe)
        lines.append(f"{recipe:>17}: {format_counts(*count_params(model))}")
    return lines


def run_checks(folder: str | Path, text_source: str | None = None) -> tuple[list[Result], list[str]]:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        return [Result("model folder", False, f"{folder} has no config.json")], []
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(folder)
    results = [check_ids(model, processor)]
    try:
        results += check_image_reaches_lm(model, processor)
    except Exception as exc:  # a broken model raises inside transformers; that is the finding, not a crash
        results.append(Result("image reaches the LM", False, f"forward with an image failed: {exc}"))
    results.append(check_text_matches_source(model, processor, folder, text_source))
    return results, param_lines(model)
