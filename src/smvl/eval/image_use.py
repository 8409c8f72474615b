"""Does the model see the image? The same questions answered with the real images, blanked and shuffled ones.

A blind model scores the same in every column; the gap between `with_images` and `blank_images` is the evidence.
Blank images are black, not mid-grey: SmolVLM drops all-zero (normalised mid-grey) tiles as padding.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

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


def demo_report(model_dir: Path, samples: list[Sample], cfg, log) -> dict:
    """The end-of-run evaluation of `smvl train`: image use on the held-out questions, and a few sample answers."""
    from smvl.eval.evaluate import score_model

    results = score_model(Path(model_dir), samples, Path(model_dir).parent, None, 16, cfg.seed, retention_check=False)
    gap = results["accuracy_with_images"] - results["accuracy_blank_images"]
    log(
        f"held-out accuracy ({results['n']} questions): with images {results['accuracy_with_images']:.1%}, "
        f"blank images {results['accuracy_blank_images']:.1%}, shuffled {results['accuracy_shuffled_images']:.1%}, "
        f"majority baseline {results['majority_baseline']:.1%} (gap {gap:+.1%})"
    )
    for kind, acc in results["accuracy_by_question_type"].items():
        log(f"  {kind:>12}: with images {acc['with_images']:.1%}, blank {acc['blank_images']:.1%}")
    for row in results["predictions"][: cfg.sample_questions]:
        log(f"  Q: {row['question']}  A: {row['with_images']}  (ref: {row['reference']})")
    return results
