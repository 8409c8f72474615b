"""Image decoding: every mode to RGB, bad bytes and bombs as BadSample, never anything else."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from smvl.data.images import load_image
from smvl.data.sample import BadSample


def png(image: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["CMYK", "RGBA", "P", "LA", "L", "I;16", "I", "F", "1"])
def test_every_mode_becomes_rgb(mode):
    if mode == "I;16":
        image = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    elif mode == "F":
        image = Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32))
    else:
        image = Image.new(mode, (8, 8))
    out = load_image(image)
    assert out.mode == "RGB" and out.size == (8, 8)
    if mode == "I;16":
        assert out.getpixel((0, 0)) == (255, 255, 255)  # 16-bit white stays white, not clipped garbage


def test_transparent_pixels_become_white():
    out = load_image(Image.new("RGBA", (4, 4), (255, 0, 0, 0)))
    assert out.getpixel((0, 0)) == (255, 255, 255)


def test_inputs_of_every_shape(tmp_path):
    data = png(Image.new("RGB", (5, 7), (1, 2, 3)))
    (tmp_path / "a.png").write_bytes(data)
    b64 = base64.b64encode(data).decode()
    for obj in (data, {"bytes": data, "path": None}, {"bytes": None, "path": "a.png"}, "a.png",
                f"data:image/png;base64,{b64}", str(tmp_path / "a.png")):
        assert load_image(obj, base_dir=tmp_path).getpixel((0, 0)) == (1, 2, 3)


@pytest.mark.parametrize("obj, reason", [
    (b"not an image", "corrupt image"),
    (png(Image.new("RGB", (64, 64)), "JPEG")[:200], "corrupt image"),
    ("data:image/png;base64,@@@", "bad base64"),
    ("missing.png", "missing image file"),
    ({"bytes": None, "path": None}, "missing image"),
])
def test_bad_images_are_bad_samples(obj, reason, tmp_path):
    with pytest.raises(BadSample) as err:
        load_image(obj, base_dir=tmp_path)
    assert err.value.reason == reason


def test_zero_sized_and_oversized_images():
    with pytest.raises(BadSample, match="empty image"):
        load_image(Image.new("RGB", (0, 0)))
    bomb = png(Image.new("1", (6000, 6000)))  # tiny file, 36 megapixels
    with pytest.raises(BadSample) as err:
        load_image(bomb, max_pixels=10_000_000)
    assert err.value.reason == "image too large"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_fuzzed_bytes_only_ever_raise_bad_sample(data):
    try:
        load_image(data)
    except BadSample:
        pass
    try:
        load_image(b"\x89PNG\r\n\x1a\n" + data)
    except BadSample:
        pass
