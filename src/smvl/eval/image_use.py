"""Does the model see the image? The same questions answered with the real images, blanked and shuffled ones.

A blind model scores the same in every column; the gap between `with_images` and `blank_images` is the evidence.
Blank images are black, not mid-grey: SmolVLM drops all-zero (normalised mid-grey) tiles as padding.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import torch
from PIL import Image

from smvl.data.sample import Sample, text_of


def first_question(sample: Sample) -> tuple[list[dict], str, int]:
    """Messages up to the first answer, that answer, and how many images those messages use."""
    k = next(i for i, m in enumerate(sample.messages) if m["role"] == "assistant")
    prompt = sample.messages[:k]
    used = sum(1 for m in prompt if isinstance(m["content"], list) for p in m["content"] if p.get("type") == "image")
    return prompt, text_of(sample.messages[k]).strip(), used


def blank_like(images: list[Image.Image]) -> list[Image.Image]:
    return [Image.new("RGB", im.size, (0, 0, 0)) for im in images]


@torch.no_grad()
def answer(model, processor, prompts: list[list[dict]], images: list[list[Image.Image]], max_new_tokens: int = 16,
           batch_size: int = 16) -> list[str]:
    """Greedy answers, batched with left padding, thinking off."""
    out = []
    for start in range(0, len(prompts), batch_size):
        chunk, imgs = prompts[start : start + batch_size], images[start : start + batch_size]
        texts = [processor.tokenizer.apply_chat_template(p, chat_template=processor.chat_template, tokenize=False,
                                                         add_generation_prompt=True, enable_thinking=False)
                 for p in chunk]
        kwargs = {"images": imgs} if any(imgs) else {}
        inputs = processor(text=texts, padding=True, padding_side="left", return_tensors="pt", **kwargs)
        inputs = inputs.to(model.device)
        generated = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = generated[:, inputs["input_ids"].shape[1] :]
        out += [t.strip() for t in processor.batch_decode(new, skip_special_tokens=True)]
    return out


def question_kind(sample: Sample) -> str:
    """The question type where the source records one (the synthetic set does), else one kind for all."""
    if sample.source.startswith("synthetic:"):
        return sample.source.split(":", 1)[1].split(",")[0]
    return sample.source or "all"


def majority_baseline(kinds: list[str], answers: list[str], normalize) -> float:
    """Accuracy of always giving the most common answer of each question type (what a blind model can reach)."""
    by_kind: dict[str, Counter] = {}
    for kind, a in zip(kinds, answers):
        by_kind.setdefault(kind, Counter())[normalize(a)] += 1
    return sum(c.most_common(1)[0][1] for c in by_kind.values()) / max(1, len(answers))


def image_use(model, processor, samples: list[Sample], seed: int = 0, max_new_tokens: int = 16) -> dict:
    from smvl.eval.normalize import normalize_answer

    samples = [s for s in samples if s.images]
    prompts, refs, images = [], [], []
    for s in samples:
        prompt, ref, used = first_question(s)
        prompts.append(prompt)
        refs.append(ref)
        images.append(s.images[:used])
    shuffled = images[:]
    random.Random(seed).shuffle(shuffled)
    runs = {
        "with_images": answer(model, processor, prompts, images, max_new_tokens),
        "blank_images": answer(model, processor, prompts, [blank_like(i) for i in images], max_new_tokens),
        "shuffled_images": answer(model, processor, prompts, shuffled, max_new_tokens),
    }
    questions = [text_of(p[-1]) for p in prompts]
    score = lambda preds: sum(  # noqa: E731
        normalize_answer(p, q) == normalize_answer(r, q) for p, r, q in zip(preds, refs, questions)
    ) / max(1, len(refs))
    return {
        "n": len(refs),
        "accuracy_with_images": score(runs["with_images"]),
        "accuracy_blank_images": score(runs["blank_images"]),
        "accuracy_shuffled_images": score(runs["shuffled_images"]),
        "majority_baseline": majority_baseline([question_kind(s) for s in samples], refs, normalize_answer),
        "samples": [
            {"id": s.id, "question": q, "reference": r, "answer": a, "answer_blank": b}
            for s, q, r, a, b in zip(samples, questions, refs, runs["with_images"], runs["blank_images"])
        ],
    }


def demo_report(model_dir: Path, samples: list[Sample], cfg, log) -> dict:
    """The end-of-run evaluation of `smvl train`: image use on the held-out questions, and a few sample answers."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    results = image_use(model, processor, samples, seed=cfg.seed)
    gap = results["accuracy_with_images"] - results["accuracy_blank_images"]
    log(
        f"held-out accuracy ({results['n']} questions): with images {results['accuracy_with_images']:.1%}, "
        f"blank images {results['accuracy_blank_images']:.1%}, shuffled {results['accuracy_shuffled_images']:.1%}, "
        f"majority baseline {results['majority_baseline']:.1%} (gap {gap:+.1%})"
    )
    for row in results["samples"][: cfg.sample_questions]:
        log(f"  Q: {row['question']}  A: {row['answer']}  (ref: {row['reference']})")
    return results
