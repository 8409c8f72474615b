"""Benchmark samples with a realistic length mix, made without any download.

Each sample is one image and one question/answer turn:
- the image's tile grid is rows x cols with rows and cols uniform in 1..4; 1x1 is a single tile (no split), any
  other grid adds the global image, so a sample has 1 to 17 tiles (mean 7.2) of `image_seq_len` tokens each plus
  the text row/col markers;
- text is 50 to 600 tokens (uniform), a fifth of it the question and the rest the answer, drawn from common
  Chinese characters (about one token each with Qwen's tokenizer).
The grid is set through the longest edge the image processor resizes to, so tiling is the real processor's.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image

from smvl.data.batches.collate import CollateOptions, Encoded, Encoder
from smvl.data.samples.sample import Sample

CHARS = ("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面"
         "而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开"
         "它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条")


def grid_image(rows: int, cols: int, tile: int, rng: random.Random) -> tuple[Image.Image, int]:
    """An image and the longest edge that makes the processor cut it into rows x cols tiles."""
    longest = max(rows, cols)
    # The longest side exactly at the resize target (no rescaling), the other a little short of its tile count.
    height, width = (n * tile - (0 if n == longest else rng.randrange(8, tile // 4)) for n in (rows, cols))
    noise = np.random.default_rng(rng.randrange(2**32)).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return Image.fromarray(noise).resize((width, height)), tile * max(rows, cols)


def text(n: int, rng: random.Random) -> str:
    return "".join(rng.choice(CHARS) for _ in range(n))


def bench_samples(processor, n: int, seed: int, labels: str, max_length: int = 2048) -> list[Encoded]:
    """`n` encoded samples (tokens, labels under `labels`, pixel tiles), the same for a given seed."""
    rng = random.Random(seed)
    encoder = Encoder(processor, CollateOptions(max_length=max_length, labels=labels, retile=False))
    tile = processor.image_processor.max_image_size["longest_edge"]
    out = []
    for i in range(n):
        rows, cols = rng.randint(1, 4), rng.randint(1, 4)
        image, encoder.size = grid_image(rows, cols, tile, rng)
        length = rng.randint(50, 600)
        question = max(10, length // 5)
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text(question, rng)}]},
                    {"role": "assistant", "content": [{"type": "text", "text": text(length - question, rng)}]}]
        enc = encoder(Sample(messages, [image], id=f"bench-{i}"))
        expected = 1 if (rows, cols) == (1, 1) else rows * cols + 1
        if enc.pixel_values.shape[0] != expected:
            raise RuntimeError(f"bench sample {i}: expected {expected} tiles, the processor made "
                               f"{enc.pixel_values.shape[0]}")
        out.append(enc)
    return out
