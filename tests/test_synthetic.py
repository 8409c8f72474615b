"""The synthetic Chinese set: deterministic, consistent with its images, and unanswerable without them."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict

import numpy as np
import pytest

from smvl.data.samples.sample import text_of
from smvl.eval.image_use import majority_baseline
from smvl.data.sources.synthetic import (
    ANSWER_CLASSES,
    COLOURS,
    COUNTS,
    FOLLOW_UPS,
    POSITIONAL,
    SHAPES,
    answer,
    describe,
    generate,
    make_sample,
    question_types,
    synthetic_samples,
)

# chi-square critical values at p = 0.001 by degrees of freedom (number of answer classes - 1)
CHI2_CRIT = {1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47}


@pytest.fixture(scope="module")
def single():
    return synthetic_samples("train", 3000, seed=0, multi_turn_fraction=0.0)


def pixels(sample):
    return np.asarray(sample.images[0])


def turns(sample):
    """(question, answer) pairs."""
    m = sample.messages
    return [(text_of(m[i]), text_of(m[i + 1])) for i in range(0, len(m), 2)]


def test_deterministic_and_splits_differ():
    a, b = synthetic_samples("train", 30, seed=3), synthetic_samples("train", 30, seed=3)
    assert [s.messages for s in a] == [s.messages for s in b] and [s.id for s in a] == [s.id for s in b]
    assert all(np.array_equal(pixels(x), pixels(y)) for x, y in zip(a, b))
    other_seed = synthetic_samples("train", 30, seed=4)
    assert sum(np.array_equal(pixels(x), pixels(y)) for x, y in zip(a, other_seed)) == 0
    train = {pixels(s).tobytes() for s in synthetic_samples("train", 200, seed=0)}
    test = {pixels(s).tobytes() for s in synthetic_samples("test", 200, seed=0)}
    assert len(train) == len(test) == 200 and not train & test
    assert a[7].id == "synthetic-train-000007" and a[7].source.startswith("synthetic:")
    with pytest.raises(ValueError):
        synthetic_samples("dev", 1)


def test_the_demos_samples_are_the_ones_the_readme_measured():
    """The demo's figures (README) hold for these exact samples: a faster way of drawing them must keep every pixel."""
    digest = hashlib.sha256()
    for i in range(64):
        sample = make_sample("train", 42, i, scene_fraction=0.5)
        digest.update(pixels(sample).tobytes() + repr(sample.messages).encode())
    assert digest.hexdigest()[:16] == "faf37ca4966d7eea"


@pytest.mark.parametrize("size", [96, 64, 160])
def test_samples_validate_and_images_have_the_requested_size(size):
    for s in synthetic_samples("test", 40, seed=1, image_size=size, multi_turn_fraction=0.5):
        s.validate()
        assert s.images[0].mode == "RGB" and s.images[0].size == (size, size)
        assert s.messages[0]["content"][0] == {"type": "image"} and s.image_parts() == 1
        assert [m["role"] for m in s.messages] == ["user", "assistant"] * (len(s.messages) // 2)
        assert len(question_types(s)) == len(s.messages) // 2


def test_answers_are_uniform_given_the_question(single):
    by_kind, by_text = defaultdict(Counter), defaultdict(Counter)
    for s in single:
        (q, a), = turns(s)
        by_kind[question_types(s)[0]][a] += 1
        by_text[q, question_types(s)[0]][a] += 1
    for kind, counts in by_kind.items():
        classes = ANSWER_CLASSES[kind]
        assert set(counts) == set(classes)
        assert max(counts.values()) / sum(counts.values()) < 1.5 / len(classes), (kind, counts)
    # per exact question text: no word of the question (the shape or colour it names) shifts the answer
    tested = 0
    for (q, kind), counts in by_text.items():
        n, k = sum(counts.values()), len(ANSWER_CLASSES[kind])
        if n < 30:
            continue
        chi2 = sum((counts[c] - n / k) ** 2 / (n / k) for c in ANSWER_CLASSES[kind])
        assert chi2 < CHI2_CRIT[k - 1], (q, counts)
        tested += 1
    assert tested >= 20


def test_a_blind_reader_does_no_better_than_chance(single):
    """Learn the best answer per question text on train, answer test with it: chance level, not better."""
    best = defaultdict(Counter)
    for s in single:
        (q, a), = turns(s)
        best[q][a] += 1
    test = synthetic_samples("test", 1000, seed=0, multi_turn_fraction=0.0)
    hits = sum(best[q].most_common(1)[0][0] == a for s in test for q, a in turns(s) if best[q])
    chance = np.mean([1 / len(ANSWER_CLASSES[question_types(s)[0]]) for s in test])
    assert hits / len(test) < chance + 0.05, (hits / len(test), chance)
    kinds = [question_types(s)[0] for s in test]
    answers = [a for s in test for _, a in turns(s)]
    assert abs(majority_baseline(kinds, answers, str.strip) - chance) < 0.05


def test_multi_turn_fraction_and_no_answer_given_away_earlier():
    for fraction in (0.0, 0.2, 1.0):
        samples = synthetic_samples("train", 600, seed=1, multi_turn_fraction=fraction)
        multi = [s for s in samples if len(s.messages) > 2]
        assert abs(len(multi) / len(samples) - fraction) < 0.05
    for s in multi:
        kinds = question_types(s)
        assert len(kinds) in (2, 3) and len(set(kinds)) == len(kinds)
        assert not {"colour", "shape"} <= set(kinds)
        # colour/shape (named attributes) always come before position questions, which may name both
        assert kinds == sorted(kinds, key=lambda k: k in POSITIONAL)
        for t, (q, a) in enumerate(turns(s)):
            history = "".join(text_of(m) for m in s.messages[: 2 * t])
            if kinds[t] not in POSITIONAL:
                assert a not in history + q, (s.messages, t)
            if q in FOLLOW_UPS.values():
                assert any(k != "count" for k in kinds[:t])  # 它 always has something to refer to


def named_object(question, objects, previous):
    """The object a question is about, read from its text as a model would."""
    if "它" in question:
        return previous
    hits = [o for o in objects if o["shape"] in question or o["colour"] in question]
    assert len({id(o) for o in hits}) == 1, (question, objects)  # named attributes pick exactly one object
    return hits[0]


def test_answers_match_the_scene_and_the_pixels():
    for i in range(150):
        sample, objects = generate("train", 2, i, multi_turn_fraction=0.5)
        image = pixels(sample).astype(int)
        size = image.shape[0]
        assert 1 <= len(objects) <= 4
        assert len({o["shape"] for o in objects}) == len({o["colour"] for o in objects}) == len(objects)
        for o in objects:
            x0, y0, x1, y1 = o["box"]
            # inside its own quadrant: no overlap, and clearly on one side of each centre line
            assert o["col"] * size / 2 < x0 < x1 < (o["col"] + 1) * size / 2
            assert o["row"] * size / 2 < y0 < y1 < (o["row"] + 1) * size / 2
            # a point inside every shape (the triangle's centroid) has the object's colour
            cx, cy = int((x0 + x1) / 2), int(y0 + (y1 - y0) * (2 / 3 if o["shape"] == "三角形" else 1 / 2))
            assert np.abs(image[cy, cx] - COLOURS[o["colour"]]).sum() == 0, (i, o)
            # and the object is big enough to see: hundreds of pixels of its colour in its quadrant at 96px
            half = size // 2
            cell = image[o["row"] * half:(o["row"] + 1) * half, o["col"] * half:(o["col"] + 1) * half]
            assert (np.abs(cell - COLOURS[o["colour"]]).sum(-1) == 0).sum() > 150
        obj = None
        for kind, (q, a) in zip(question_types(sample), turns(sample)):
            if kind == "count":
                assert a == COUNTS[len(objects) - 1]
                continue
            obj = named_object(q, objects, obj)
            assert a == answer(kind, obj, objects) and a in ANSWER_CLASSES[kind]


def test_background_is_light_and_varied():
    corners = [pixels(s)[1, 1] for s in synthetic_samples("train", 50, seed=5)]
    assert all(c.min() > 150 for c in corners)
    assert len({tuple(c) for c in corners}) > 40


def test_majority_baseline_counts_the_top_answer_per_question_type_and_describe_lists_every_answer():
    samples = synthetic_samples("train", 8, seed=0, multi_turn_fraction=0.0)
    for s, kind in zip(samples, ["count"] * 3 + ["colour"] * 5):
        s.source = f"synthetic:{kind}"
    for s, a in zip(samples, ["一个", "一个", "两个", "红色", "红色", "蓝色", "绿色", "黄色"]):
        s.messages[1]["content"] = a
    kinds = [question_types(s)[0] for s in samples]
    answers = [a for s in samples for _, a in turns(s)]
    assert majority_baseline(kinds, answers, str.strip) == (2 + 2) / 8
    text = describe()
    assert all(a in text for classes in ANSWER_CLASSES.values() for a in classes) and SHAPES[0] in text


def test_scene_descriptions_list_every_object_in_the_order_asked_and_leave_the_questions_unchanged():
    from smvl.data.sources.synthetic import CORNERS, SCENE_ORDERS

    plain = [generate("train", 0, i)[0] for i in range(300)]
    mixed = [generate("train", 0, i, scene_fraction=0.5) for i in range(300)]
    scenes = [(s, objects) for s, objects in mixed if question_types(s) == ["scene"]]
    assert 110 <= len(scenes) <= 190
    for (s, objects), before in zip(mixed, plain):
        assert pixels(s).tobytes() == pixels(before).tobytes()
        if question_types(s) != ["scene"]:
            assert s.messages == before.messages  # the question samples are the ones a fraction of 0 gives
    orders = Counter()
    for s, objects in scenes:
        (asked, described), = turns(s)
        order, = [o for o, questions in SCENE_ORDERS.items() if asked in questions]
        orders[order] += 1
        parts = described.split("，")
        assert len(parts) == len(objects)
        corner = {(o["col"], o["row"]): CORNERS[o["col"], o["row"]] for o in objects}
        if order == "position":  # top row first, then left to right; corner, colour, shape
            listed = sorted(objects, key=lambda o: (o["row"], o["col"]))
            assert parts == [corner[o["col"], o["row"]] + o["colour"] + o["shape"] for o in listed]
        elif order == "colour":  # 红 绿 蓝 黄 紫; colour, shape, corner
            listed = sorted(objects, key=lambda o: list(COLOURS).index(o["colour"]))
            assert parts == [o["colour"] + o["shape"] + corner[o["col"], o["row"]] for o in listed]
        else:  # 圆形 正方形 三角形 菱形; shape, colour, corner
            listed = sorted(objects, key=lambda o: SHAPES.index(o["shape"]))
            assert parts == [o["shape"] + o["colour"] + corner[o["col"], o["row"]] for o in listed]
    assert min(orders.values()) >= len(scenes) // 5 and len(orders) == 3


def test_held_out_samples_never_describe_scenes_and_training_ones_do_when_asked():
    from smvl.data.sources import open_source

    def kinds(split, fraction):
        return Counter(question_types(s)[0] for s in open_source("synthetic", split=split, max_samples=60,
                                                                  synthetic_scenes=fraction))
    assert kinds("train", 0.0)["scene"] == 0 and kinds("test", 1.0)["scene"] == 0
    assert kinds("train", 1.0) == {"scene": 60}
