"""The synthetic video-QA set: deterministic, answers uniform given the question, and the first frame alone (the
frozen-frame control) tells a reader nothing while the whole clip does."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

from smvl.data.samples.sample import text_of
from smvl.data.sources.synthetic_video import ANSWER_CLASSES, generate, synthetic_video_samples

CHI2_CRIT = {3: 16.27}  # chi-square at p = 0.001, 3 degrees of freedom (every type has 4 answers)


@pytest.fixture(scope="module")
def train():
    return synthetic_video_samples("train", 1200, seed=0)


@pytest.fixture(scope="module")
def test():
    return synthetic_video_samples("test", 200, seed=0)


def kind(sample) -> str:
    return sample.source.split(":", 1)[1]


def qa(sample) -> tuple[str, str]:
    return text_of(sample.messages[0]), text_of(sample.messages[1])


def test_deterministic_by_seed_and_splits_differ():
    a, b = generate("train", 3, 5), generate("train", 3, 5)
    assert a.messages == b.messages and torch.equal(a.videos[0].frames, b.videos[0].frames)
    assert not torch.equal(a.videos[0].frames, generate("train", 4, 5).videos[0].frames)
    assert not torch.equal(a.videos[0].frames, generate("test", 3, 5).videos[0].frames)
    a.validate()
    assert a.videos[0].frames.shape == (4, 3, 64, 64) and a.videos[0].timestamps == [0.0, 0.5, 1.0, 1.5]
    assert a.messages[0]["content"][0] == {"type": "video"}


def chi2(counts: Counter, classes: list[str]) -> float:
    n = sum(counts.values())
    return sum((counts[c] - n / len(classes)) ** 2 / (n / len(classes)) for c in classes)


def test_answers_are_uniform_given_the_question(train):
    """Per type, per exact question text, and per shape or colour word a direction question names."""
    by_kind, by_text, by_word = defaultdict(Counter), defaultdict(Counter), defaultdict(Counter)
    for s in train:
        q, a = qa(s)
        by_kind[kind(s)][a] += 1
        by_text[kind(s), q][a] += 1
        if kind(s) == "direction":
            for word in ("红色", "绿色", "蓝色", "黄色", "紫色", "圆形", "正方形", "三角形", "菱形"):
                if word in q:
                    by_word[word][a] += 1
    assert set(by_kind) == set(ANSWER_CLASSES)
    for k, counts in by_kind.items():
        assert set(counts) == set(ANSWER_CLASSES[k])
        assert max(counts.values()) / sum(counts.values()) < 1.5 / 4, (k, counts)
    texts = [(k, q) for (k, q), counts in by_text.items() if sum(counts.values()) >= 30]
    assert len(texts) >= 6
    for k, q in texts:
        assert chi2(by_text[k, q], ANSWER_CLASSES[k]) < CHI2_CRIT[3], (q, by_text[k, q])
    assert len(by_word) == 9
    for word, counts in by_word.items():
        assert chi2(counts, ANSWER_CLASSES["direction"]) < CHI2_CRIT[3], (word, counts)


def features(sample, frames: slice) -> np.ndarray:
    """The chosen frames at 16x16, flattened: what a nearest-neighbour reader compares."""
    x = sample.videos[0].frames[frames].float()
    return torch.nn.functional.avg_pool2d(x, 4).flatten().numpy()


def nearest_neighbour_accuracy(train, test, frames: slice) -> float:
    """Per question type, answer each test clip with its nearest training clip's answer (on `frames` only)."""
    hits = 0
    for k in ANSWER_CLASSES:
        ref = [s for s in train if kind(s) == k]
        refs = np.stack([features(s, frames) for s in ref])
        for s in (s for s in test if kind(s) == k):
            nearest = ref[int(np.argmin(((refs - features(s, frames)) ** 2).sum(1)))]
            hits += qa(nearest)[1] == qa(s)[1]
    return hits / len(test)


def test_the_first_frame_alone_is_at_chance_the_clip_is_not(train, test):
    first = nearest_neighbour_accuracy(train, test, slice(0, 1))
    whole = nearest_neighbour_accuracy(train, test, slice(None))
    print(f"nearest neighbour on the first frame {first:.1%}, on all frames {whole:.1%}")
    assert first < 0.25 + 0.07
    assert whole > first + 0.1
