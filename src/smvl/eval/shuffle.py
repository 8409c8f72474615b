"""The shuffled-image condition: which sample's images each sample is asked about instead of its own.

A plain shuffle leaves some samples their own images (inflating the "shuffled" score) and hands a one-image
question two images (which the processor rejects). So the pairing is a derangement within each group of samples
that use the same number of images, deterministic by seed, and it never pairs two samples whose image sets are
identical (several questions about one picture), since that is no shuffle at all.

A sample that cannot get another's images sits out of the shuffled condition (partner None): the only member of
its image-count group, or one of too many samples sharing one image set. Scores then count only the samples that
took part, and the report says how many.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict

from PIL import Image


def image_key(images: list[Image.Image]) -> str:
    """A digest of the pixels (and sizes and modes) of an image set: equal sets, equal keys."""
    h = hashlib.blake2b(digest_size=16)
    for im in images:
        h.update(f"{im.mode}:{im.size}:".encode())
        h.update(im.tobytes())
    return h.hexdigest()


def shuffled_partners(counts: list[int], keys: list[str], seed: int) -> list[int | None]:
    """For each sample (its image count and `image_key`), the index of the sample whose images it gets, or None
    when it sits out."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, count in enumerate(counts):
        groups[count].append(i)
    partners: list[int | None] = [None] * len(counts)
    rng = random.Random(seed)
    for count in sorted(groups):
        members = groups[count]
        rng.shuffle(members)
        sizes = Counter(keys[i] for i in members)
        first = {}
        for k, i in enumerate(members):
            first.setdefault(keys[i], k)
        # Identical sets side by side (in shuffled order), largest run first: a rotation by the largest run's
        # length then never lands on the same set, as long as that run is at most half the group.
        members.sort(key=lambda i: (-sizes[keys[i]], first[keys[i]]))
        largest = sizes.most_common(1)[0][1]
        excess = max(0, 2 * largest - len(members))  # of the largest run, more than the others can take
        members = members[excess:]
        for k, i in enumerate(members):
            partners[i] = members[(k + largest - excess) % len(members)]
    return partners
