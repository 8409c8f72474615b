"""Does the model see the image? The same questions answered with the real images, blanked and shuffled ones.

A blind model scores the same in every column; the gap between `with_images` and `blank_images` is the evidence.
Blank images are black, not mid-grey: SmolVLM drops all-zero (normalised mid-grey) tiles as padding.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from PIL import Image

from smvl.data.sample import Sample, text_of
from smvl.infer.generate import generate_batch


def first_question(sample: Sample) -> tuple[list[dict], str, int]:
    """Messages up to the first answer, that answer, and how many images those messages use."""
    k = next(i for i, m in enumerate(sample.messages) if m["role"] == "assistant")
    prompt = sample.messages[:k]
    used = sum(1 for m in prompt if isinstance(m["content"], list) for p in m["content"] if p.get("type") == "image")
    return prompt, text_of(sample.messages[k]).strip(), used


def blank_like(images: list[Image.Image]) -> list[Image.Image]:
    return [Image.new("RGB", im.size, (0, 0, 0)) for im in images]


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
        name: generate_batch(model, processor, prompts, imgs, max_new_tokens=max_new_tokens)
        for name, imgs in (("with_images", images), ("blank_images", [blank_like(i) for i in images]),
                           ("shuffled_images", shuffled))
    }
    questions = [text_of(p[-1]) for p in prompts]
    def score(preds, refs=refs, questions=questions) -> float:
        hits = sum(normalize_answer(p, q) == normalize_answer(r, q) for p, r, q in zip(preds, refs, questions))
        return hits / max(1, len(refs))

    kinds = [question_kind(s) for s in samples]
    by_kind = {}
    for kind in sorted(set(kinds)):
        rows = [i for i, k in enumerate(kinds) if k == kind]
        by_kind[kind] = {name: score([runs[name][i] for i in rows], [refs[i] for i in rows],
                                     [questions[i] for i in rows]) for name in runs}
    return {
        "n": len(refs),
        "accuracy_with_images": score(runs["with_images"]),
        "accuracy_blank_images": score(runs["blank_images"]),
        "accuracy_shuffled_images": score(runs["shuffled_images"]),
        "majority_baseline": majority_baseline(kinds, refs, normalize_answer),
        "accuracy_by_question_type": by_kind,
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
    for kind, acc in results["accuracy_by_question_type"].items():
        log(f"  {kind:>12}: with images {acc['with_images']:.1%}, blank {acc['blank_images']:.1%}")
    for row in results["samples"][: cfg.sample_questions]:
        log(f"  Q: {row['question']}  A: {row['answer']}  (ref: {row['reference']})")
    return results
