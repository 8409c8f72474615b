"""Does the model see the image? The same questions answered with the real images, blanked and shuffled ones.

A blind model scores the same in every column; the gap between `with_images` and `blank_images` is the evidence.
Blank images are black, not mid-grey: SmolVLM drops all-zero (normalised mid-grey) tiles as padding. A video's
blank is black frames; its `frozen_frames` control (every frame replaced by the first, timestamps kept) is what a
model that looks but does not use motion can reach: the gap to it is the evidence the model uses the clip.
"""

from __future__ import annotations

from collections import Counter

from PIL import Image

from smvl.data.batches.collate import CollateOptions, apply_image_policy
from smvl.data.samples.sample import BadSample, Sample, image_parts, text_of, video_parts
from smvl.data.samples.skips import SkipLog
from smvl.data.sources.synthetic import question_types


def first_turn(sample: Sample) -> tuple[list[dict], dict]:
    """The messages before the first assistant turn, and that turn."""
    k = next(i for i, m in enumerate(sample.messages) if m["role"] == "assistant")
    return sample.messages[:k], sample.messages[k]


def first_question(sample: Sample) -> tuple[list[dict], str, int]:
    """Messages up to the first answer, that answer, and how many images those messages use."""
    prompt, answer = first_turn(sample)
    return prompt, text_of(answer).strip(), image_parts(prompt)


def under_policy(samples: list[Sample], options: CollateOptions, skips: SkipLog) -> list[Sample]:
    """The samples as training would see them (`images: first` keeps the first image, `all` refuses more than
    `max_images`; refused ones are counted in `skips`), less those whose first question shows no image or video."""
    kept = []
    for s in samples:
        try:
            s = apply_image_policy(s, options.images, options.max_images)
        except BadSample as exc:
            skips.skip(s.id, exc.reason)
            continue
        prompt, _, used = first_question(s)
        if used or video_parts(prompt):
            kept.append(s)
    return kept


def blank_like(images: list[Image.Image]) -> list[Image.Image]:
    return [Image.new("RGB", im.size, (0, 0, 0)) for im in images]


def question_kind(sample: Sample) -> str:
    """The question type where the source records one (the synthetic set does), else one kind for all."""
    if sample.source.startswith("synthetic:"):
        return question_types(sample)[0]
    if sample.source.startswith("synthetic-video:"):
        return sample.source.split(":", 1)[1]
    return sample.source or "all"


def majority_baseline(kinds: list[str], answers: list[str], normalize) -> float:
    """Accuracy of always giving the most common answer of each question type (what a blind model can reach)."""
    by_kind: dict[str, Counter] = {}
    for kind, a in zip(kinds, answers):
        by_kind.setdefault(kind, Counter())[normalize(a)] += 1
    return sum(c.most_common(1)[0][1] for c in by_kind.values()) / max(1, len(answers))
