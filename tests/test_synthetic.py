"""The synthetic Chinese set: deterministic, consistent with its images, and unanswerable without them."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import numpy as np

from smvl.data.synthetic import ANSWER_CLASSES, COLOURS, question, question_types, scene, synthetic_samples


def test_deterministic_and_splits_differ():
    a, b = synthetic_samples("train", 20, seed=3), synthetic_samples("train", 20, seed=3)
    assert [s.messages for s in a] == [s.messages for s in b]
    assert all(np.array_equal(np.asarray(x.images[0]), np.asarray(y.images[0])) for x, y in zip(a, b))
    test = synthetic_samples("test", 20, seed=3)
    assert not any(np.array_equal(np.asarray(x.images[0]), np.asarray(y.images[0])) for x, y in zip(a, test))
    assert all(s.validate() and s.images[0].mode == "RGB" and s.images[0].size == (96, 96) for s in a)


def test_answers_are_uniform_given_the_question():
    answers = defaultdict(Counter)
    samples = synthetic_samples("train", 3000, seed=0, multi_turn_fraction=0.0)
    for s in samples:
        # the question text with the object named in it, so colour/shape words can't leak the answer either
        answers[s.messages[0]["content"][1]["text"]][s.messages[1]["content"]] += 1
    by_kind = defaultdict(Counter)
    for s in samples:
        by_kind[question_types(s)[0]][s.messages[1]["content"]] += 1
    for kind, counts in by_kind.items():
        classes = ANSWER_CLASSES[kind]
        assert set(counts) == set(classes)
        assert max(counts.values()) / sum(counts.values()) < 1.3 / len(classes), (kind, counts)
    frequent = [c for c in answers.values() if sum(c.values()) >= 40]
    assert frequent and all(max(c.values()) / sum(c.values()) < 0.45 for c in frequent)


def test_multi_turn_fraction():
    samples = synthetic_samples("train", 1000, seed=1, multi_turn_fraction=0.2)
    multi = sum(len(s.messages) > 2 for s in samples) / len(samples)
    assert 0.15 < multi < 0.25
    assert all(s.image_parts() == 1 for s in samples)


def test_answers_match_the_pixels():
    rng = random.Random(5)
    for _ in range(50):
        image, objects = scene(rng, 96)
        kind, text, answer = question(rng, objects)
        if kind != "colour":
            continue
        obj = next(o for o in objects if o["shape"] in text)
        cx, cy = 48 * obj["col"] + 24, 48 * obj["row"] + 24
        pixels = np.asarray(image)[48 * obj["row"]:48 * obj["row"] + 48, 48 * obj["col"]:48 * obj["col"] + 48]
        target = np.array(COLOURS[answer])
        assert (np.abs(pixels.astype(int) - target).sum(-1) < 30).sum() > 100, (cx, cy, answer)
