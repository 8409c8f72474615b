"""JPEGs decoded at reduced scale (PIL `draft`) for the fast tiling path: never below the size the processor
resizes to, the same tile grid, and pixels close to a full decode through the stock processor."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from transformers import AutoImageProcessor

from smvl.data.samples.images import load_image
from smvl.data.batches.tiles import FastTiler, final_size

# Large photos and scans in every orientation, sizes just past a draft step (4097), and the_cauldron's usual sizes
# (1700x2200, 640x480), which the 2,048 px target leaves at full scale.
SIZES = [(4400, 3300), (5000, 5000), (3000, 8000), (8200, 1000), (4097, 4097), (4095, 2050), (2100, 4300),
         (1700, 2200), (640, 480)]


@pytest.fixture(scope="module")
def image_processor(assets):
    return AutoImageProcessor.from_pretrained(assets / "smolvlm2-256m-video-instruct")


def jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """A photo-like JPEG: a smooth colour field with fine noise."""
    rng = np.random.default_rng(seed)
    field = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height), Image.BILINEAR)
    pixels = np.asarray(field, dtype=np.int16) + rng.integers(-8, 9, (height, width, 1), dtype=np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_draft_decode_is_never_below_the_processor_target_and_keeps_the_grid(image_processor):
    tiler, drafted = FastTiler(image_processor), 0
    for width, height in SIZES:
        data = jpeg(width, height)
        small = load_image(data, draft=tiler.decode_size)
        target = final_size(height, width, 2048, 512)
        # Shrunk only while still at least the target (an image below it is upscaled from its full decode).
        assert small.height >= min(height, target[0]) and small.width >= min(width, target[1]), (width, height)
        assert final_size(small.height, small.width, 2048, 512) == target
        assert (image_processor.get_number_of_image_patches(small.height, small.width, {})
                == image_processor.get_number_of_image_patches(height, width, {}))
        drafted += small.size != (width, height)
    assert drafted >= 5  # the large ones really are decoded smaller


def test_draft_decoded_tiles_stay_close_to_full_decode_through_the_stock_processor(image_processor):
    data = jpeg(4400, 3300, seed=1)
    tiler = FastTiler(image_processor)
    small = load_image(data, draft=tiler.decode_size)
    assert small.size == (2200, 1650)  # half scale: still above the 2048x1536 target
    want = image_processor([[load_image(data)]], return_tensors="pt")["pixel_values"][0]
    tiles, _ = tiler([small], 2048)
    scale, shift = tiler.norm()
    diff = (tiles.float() * scale - shift - want).abs()
    # Measured: mean 0.0035 (under half a grey level; the pixel range is 2), the noise's extremes up to ~0.1.
    assert diff.mean() < 0.01
    assert (diff > 0.1).float().mean() < 0.01


def test_only_jpegs_are_drafted(image_processor):
    buf = io.BytesIO()
    Image.new("RGB", (5000, 5000), (10, 20, 30)).save(buf, format="PNG")
    assert load_image(buf.getvalue(), draft=FastTiler(image_processor).decode_size).size == (5000, 5000)
