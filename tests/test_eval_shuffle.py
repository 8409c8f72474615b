"""The shuffled-image condition: a derangement within image-count groups, deterministic, never a sample's own
images (nor an identical set); samples that cannot be paired sit out."""

from __future__ import annotations

import random

from PIL import Image

from smvl.eval.shuffle import image_key, shuffled_partners


def distinct(n: int) -> list[str]:
    return [f"set{i}" for i in range(n)]


def test_no_sample_keeps_its_own_images_and_counts_match():
    rng = random.Random(0)
    for seed in range(20):
        counts = [rng.choice([1, 2, 3]) for _ in range(rng.randint(6, 30))]
        partners = shuffled_partners(counts, distinct(len(counts)), seed)
        paired = [i for i, p in enumerate(partners) if p is not None]
        assert all(partners[i] != i and counts[partners[i]] == counts[i] for i in paired)
        # a permutation of the paired samples: every image set is shown exactly once
        assert sorted(partners[i] for i in paired) == paired
        assert all(p is not None for i, p in enumerate(partners) if counts.count(counts[i]) > 1)


def test_pairing_is_fixed_by_the_seed():
    counts, keys = [1] * 12 + [2] * 12, distinct(24)
    assert shuffled_partners(counts, keys, 7) == shuffled_partners(counts, keys, 7)
    assert shuffled_partners(counts, keys, 7) != shuffled_partners(counts, keys, 8)


def test_a_sample_alone_in_its_image_count_group_sits_out():
    partners = shuffled_partners([1, 1, 2, 3, 3], distinct(5), 0)
    assert partners[2] is None
    assert partners[0] == 1 and partners[1] == 0 and partners[3] == 4 and partners[4] == 3


def test_identical_image_sets_are_never_swapped_for_each_other():
    for seed in range(10):
        keys = ["a", "a", "b", "b", "c", "a"]
        partners = shuffled_partners([1] * 6, keys, seed)
        assert all(p is not None and keys[p] != keys[i] for i, p in enumerate(partners))
        # four questions on one picture and one on another: only one of the four can be paired
        keys = ["a", "a", "a", "a", "b"]
        partners = shuffled_partners([1] * 5, keys, seed)
        assert sum(p is not None for p in partners) == 2
        assert all(keys[p] != keys[i] for i, p in enumerate(partners) if p is not None)
    assert shuffled_partners([1, 1, 1], ["a", "a", "a"], 0) == [None, None, None]


def test_image_key_is_the_pixels():
    red = Image.new("RGB", (8, 8), (255, 0, 0))
    assert image_key([red]) == image_key([Image.new("RGB", (8, 8), (255, 0, 0))])
    assert image_key([red]) != image_key([Image.new("RGB", (8, 9), (255, 0, 0))])
    assert image_key([red]) != image_key([Image.new("RGB", (8, 8), (254, 0, 0))])
    assert image_key([red, red]) != image_key([red])


def test_the_model_is_shown_the_images_of_the_sample_it_is_said_to_be_shuffled_from(tmp_path, monkeypatch):
    """The pairing is only half of it: the pixels handed to generation must be the named partner's, in order."""
    from smvl.data.samples.sample import Sample
    from smvl.eval import evaluate
    from smvl.eval.cache import PredictionCache

    def colours(model, processor, prompts, images, videos=None, **options):
        return [",".join(str(im.getpixel((0, 0))) for im in shown) for shown in images]

    def sample(k: int, count: int) -> Sample:
        images = [Image.new("RGB", (8, 8), (10 * k, n, 7)) for n in range(count)]
        messages = [{"role": "user", "content": [{"type": "image"}] * count + [{"type": "text", "text": "颜色？"}]},
                    {"role": "assistant", "content": "红"}]
        return Sample(messages, images, id=f"q{k}")

    monkeypatch.setattr(evaluate, "generate_batch", colours)
    samples = [sample(k, 1 if k < 5 else 2) for k in range(8)]
    answers, partners = evaluate.predict(None, None, samples, PredictionCache(tmp_path / "p.jsonl"), ["m"], 3, 0)
    for i, s in enumerate(samples):
        source = samples[partners[i]]  # what the report names as `shuffled_from`
        assert answers[i, "shuffled_images"] == colours(None, None, [], [source.images])[0]
        assert answers[i, "with_images"] == colours(None, None, [], [s.images])[0]
        assert answers[i, "blank_images"] == ",".join(["(0, 0, 0)"] * len(s.images))
