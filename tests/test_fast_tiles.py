"""The fast tiling path (`data/batches/tiles.py`) against transformers' SmolVLM image processor with the real pair's
settings (512 px tiles, 2,048 px longest edge): same shapes, grids and masks, pixels within a bounded distance, and
the same encoded samples and batches."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor

from smvl.bench.dataset import chart, document, photo
from smvl.data.batches.collate import CollateOptions, Encoder, collate
from smvl.data.batches.pixels import normalise, norm_of
from smvl.data.samples.sample import Sample
from smvl.data.batches.tiles import FastTiler


@pytest.fixture(scope="module")
def image_processor(assets):
    return AutoImageProcessor.from_pretrained(assets / "smolvlm2-256m-video-instruct")


@pytest.fixture(scope="module")
def mix():
    """the_cauldron's sizes: a document scan, a chart, a 4:3 photo, and two odd shapes (a banner, a thumbnail)."""
    rng = random.Random(0)
    made = [Image.open(io.BytesIO(make(rng)[0])).convert("RGB") for make in (document, chart, photo)]
    noise = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    odd = [Image.fromarray(noise).resize(size, Image.BICUBIC) for size in ((2000, 300), (50, 41))]
    return made + odd


def stock(image_processor, image, size):
    out = image_processor([[image]], size={"longest_edge": size}, return_row_col_info=True, return_tensors="pt")
    grid = (out["rows"][0][0], out["cols"][0][0])
    return out["pixel_values"][0], out["pixel_attention_mask"][0].bool(), grid


def fast(image_processor, image, size):
    tiler = FastTiler(image_processor)
    tiles, grids = tiler([image], size)
    scale, shift = tiler.norm()
    return tiles.float() * scale - shift, grids[0]


# (size, splitting, bound on mean |diff|, bound on the share of values off by more than 0.1). Measured: this mix's
# text scan at 2,048: 0.0064 and 2.1% (the 64 scans of `smvl bench data`: up to 0.0113); re-tiled to 512 (a sample
# too long for max_length): 0.032 and 10%, where stock shrinks the page to 399x512 and then stretches it square.
@pytest.mark.parametrize("size, splitting, mean_bound, far_bound", [(2048, True, 0.02, 0.04), (512, True, 0.05, 0.15),
                                                                    (2048, False, 0.02, 0.04)])
def test_fast_tiles_match_the_stock_processor_on_the_size_mix(image_processor, mix, size, splitting, mean_bound,
                                                              far_bound):
    image_processor.do_image_splitting = splitting
    try:
        for image in mix:
            want, want_mask, want_grid = stock(image_processor, image, size)
            got, got_grid = fast(image_processor, image, size)
            assert got.shape == want.shape and got_grid == want_grid, image.size
            assert want_mask.all()  # no padded pixel: the fast path's batches rightly carry no mask
            diff = (got - want).abs()  # normalised units: the pixel range is [-1, 1]
            # One resize where stock makes two: the pixels differ only where stock's second resize stretched the
            # image (0.01 is 1.3 grey levels, the range being 2); edge pixels of sharp text differ most.
            assert diff.mean() < mean_bound, (image.size, float(diff.mean()))
            assert (diff > 0.1).float().mean() < far_bound, image.size
            # The global tile, resized from the decoded image where stock shrinks the tiled pixels: measured at most
            # 0.0044 on average and 0.34% of values off by more than 0.1 (a chart's bar edges).
            if len(diff) > 1:  # one tile is the whole image, not a global one
                assert diff[-1].mean() < 0.01 and (diff[-1] > 0.1).float().mean() < 0.01, image.size
    finally:
        image_processor.do_image_splitting = True


def test_one_resize_is_the_stock_result_exactly_where_stock_resizes_once(image_processor, mix):
    """A 4:3 photo at 2,048 px lands on whole tiles (2048x1536) in stock's first resize, so both paths resize once:
    equal values prove the tile order and the normalisation. The global tile is resized from the photo itself
    (stock shrinks the 2048x1536 pixels): measured 0.0032 apart on average, under half a grey level."""
    photo_ = mix[2]
    assert photo_.size[0] / photo_.size[1] == pytest.approx(4 / 3, abs=0.05)
    image = photo_.resize((640, 480))
    want, _, _ = stock(image_processor, image, 2048)
    got, _ = fast(image_processor, image, 2048)
    assert want.shape[0] == 13
    assert torch.allclose(got[:-1], want[:-1], atol=1e-5)
    assert (got[-1] - want[-1]).abs().mean() < 0.005


def test_before_torchvision_0_27_both_paths_fall_back_to_bicubic_and_still_agree(image_processor, mix, monkeypatch):
    """torchvision < 0.27 has no LANCZOS for tensors (seen on a GPU image with 0.26: the tiler raised). Stock then
    resizes with BICUBIC; the fast path must too: the photo that both resize once is then equal again."""
    import transformers.image_processing_backends as backends

    import smvl.data.batches.tiles as tiles

    for module in (backends, tiles):
        monkeypatch.setattr(module, "is_torchvision_greater_or_equal", lambda version: False)
    image = mix[2].resize((640, 480))
    want, _, _ = stock(image_processor, image, 2048)
    got, _ = fast(image_processor, image, 2048)
    assert torch.allclose(got[:-1], want[:-1], atol=1e-5)
    monkeypatch.undo()
    lanczos, _ = fast(image_processor, image, 2048)
    assert not torch.allclose(got[:-1], lanczos[:-1], atol=1e-3)  # the fallback really is another filter


def test_encoder_fast_and_stock_paths_give_the_same_tokens_tiles_and_batches(assets, mix):
    from smvl.splice.processor import build_processor

    vlm = AutoConfig.from_pretrained(assets / "smolvlm2-256m-video-instruct")
    processor = build_processor(assets / "smolvlm2-256m-video-instruct", assets / "qwen3-0.6b", vlm.vision_config, 4)
    samples = [Sample([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "这是什么？"}]},
                       {"role": "assistant", "content": "一张图。"}], [image], id=f"s{i}")
               for i, image in enumerate(mix[:3])]
    options = CollateOptions(max_length=4096)
    slow = [Encoder(processor, CollateOptions(max_length=4096, fast_images=False))(s) for s in samples]
    quick = [Encoder(processor, options)(s) for s in samples]
    for a, b in zip(slow, quick):
        assert a.input_ids == b.input_ids and a.labels == b.labels and a.tiles == b.tiles
        assert b.pixel_values.dtype == torch.uint8  # normalised only inside the model
        assert b.pixel_values.permute(0, 2, 3, 1).is_contiguous()  # channels-last: tiles cut by whole-row copies
    pad = processor.tokenizer.pad_token_id
    want, got = collate(slow, pad, options), collate(quick, pad, options)
    assert got["pixel_values"].shape == want["pixel_values"].shape == (1, 17 + 17 + 13, 3, 512, 512)
    assert got["pixel_values"].dtype == torch.uint8 and want["pixel_values"].dtype == torch.float32
    floats = normalise(got["pixel_values"], *norm_of(processor.image_processor))
    assert (floats - want["pixel_values"]).abs().mean() < 0.02
    assert "pixel_attention_mask" not in got and "pixel_attention_mask" not in want  # all ones: SmolVLM's default
    assert torch.equal(got["input_ids"], want["input_ids"])
