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
