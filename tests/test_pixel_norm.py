"""uint8 tiles reach the model and are normalised inside it; a model that cannot do that refuses them loudly."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from smvl.data.batches.collate import CollateOptions, Encoder, collate
from smvl.data.batches.pixels import has_normaliser, normalise_on_model
from smvl.data.sources.synthetic import synthetic_samples
from smvl.train.loss import labelled_loss, unwrap


@pytest.fixture(scope="module")
def processor(tiny_model):
    return AutoProcessor.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def encoded(processor):
    encoder = Encoder(processor, CollateOptions())
    return [encoder(s) for s in synthetic_samples("train", 3)]


def batch_of(processor, encoded):
    return collate(encoded, processor.tokenizer.pad_token_id, CollateOptions())


def float_batch(batch, encoded):
    """The same batch with the tiles as the stock processor gives them: float, rescaled and normalised."""
    return {**batch, "pixel_values": torch.cat([e.pixels() for e in encoded])[None]}


def vision_inputs(model):
    """Records the pixel tensors that reach the vision tower."""
    seen = []
    unwrap(model).model.vision_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("pixel_values", args[0] if args else None)),
        with_kwargs=True)
    return seen


def test_batches_carry_uint8_tiles(processor, encoded):
    batch = batch_of(processor, encoded)
    assert batch["pixel_values"].dtype == torch.uint8 and batch["pixel_values"].shape[:2] == (1, sum(len(e.pixel_values) for e in encoded))


def test_a_uint8_batch_gives_the_logits_of_the_float_normalised_batch(processor, encoded, tiny_model):
    model = normalise_on_model(AutoModelForImageTextToText.from_pretrained(tiny_model).eval(),
                               processor.image_processor)
    seen = vision_inputs(model)
    batch = batch_of(processor, encoded)
    with torch.no_grad():
        raw, floats = model(**batch).logits, model(**float_batch(batch, encoded)).logits
    torch.testing.assert_close(raw, floats, rtol=0, atol=0)
    assert seen[0].dtype == torch.float32 and seen[0].min() >= -1 and seen[0].max() <= 1
    assert torch.equal(seen[0], seen[1])


def test_a_model_without_the_normaliser_refuses_uint8_batches(processor, encoded, tiny_model, tmp_path):
    from smvl.train.trainer import StreamTrainer

    model = AutoModelForImageTextToText.from_pretrained(tiny_model)
    batch = batch_of(processor, encoded)
    with pytest.raises(RuntimeError, match="uint8 pixel_values reached a model without the pixel normaliser"):
        labelled_loss(model, batch)
    trainer = StreamTrainer.__new__(StreamTrainer)  # compute_loss's check comes before any Trainer state is read
    with pytest.raises(RuntimeError, match="without the pixel normaliser"):
        trainer.compute_loss(model, batch)
    labelled_loss(model, float_batch(batch, encoded))  # float pixels need no normaliser


@pytest.mark.parametrize("recipe", ["full", "lora"])
def test_the_training_model_normalises_uint8_before_the_vision_tower(processor, encoded, tiny_model, tmp_path,
                                                                    recipe):
    from smvl.train.config import StageConfig
    from smvl.train.run import load_config
    from smvl.train.trainer import load_stage_model

    cfg = load_config(None, ["--output_dir", str(tmp_path / "run")])
    model = load_stage_model(tiny_model, StageConfig(recipe=recipe, lr=1e-3, steps=1), cfg, processor)
    assert has_normaliser(model)
    seen = vision_inputs(model)
    total, count = labelled_loss(model, batch_of(processor, encoded))  # LoRA: PEFT calls forward, not the module
    assert torch.isfinite(total) and count > 0
    assert seen and seen[0].dtype == torch.float32 and seen[0].min() >= -1 and seen[0].max() <= 1


def test_bench_and_eval_models_take_uint8_batches(tiny_sources, tiny_model, processor, encoded):
    from smvl.bench.train import bench_model
    from smvl.eval.evaluate import eval_loss

    model, _ = bench_model(str(tiny_sources / "vision"), str(tiny_sources / "text"), None, None, 0)
    assert has_normaliser(model)
    plain = AutoModelForImageTextToText.from_pretrained(tiny_model).eval()
    samples = synthetic_samples("train", 3)
    assert eval_loss(plain, processor, samples, CollateOptions()) > 0
    assert has_normaliser(plain)


def test_batches_leave_out_the_all_ones_mask_because_the_model_builds_the_same(processor, encoded, tiny_model):
    model = normalise_on_model(AutoModelForImageTextToText.from_pretrained(tiny_model).eval(),
                               processor.image_processor)
    batch = batch_of(processor, encoded)
    assert "pixel_attention_mask" not in batch
    tiles, height, width = batch["pixel_values"].shape[1], *batch["pixel_values"].shape[-2:]
    ones = torch.ones(1, tiles, height, width, dtype=torch.bool)  # [1, tiles, H, W]: what the processor gave
    with torch.no_grad():
        without, with_mask = model(**batch).logits, model(**batch, pixel_attention_mask=ones).logits
    torch.testing.assert_close(without, with_mask, rtol=0, atol=0)


def test_channels_last_uint8_tiles_reach_the_model_as_channels_first_floats(processor, encoded, tiny_model):
    from smvl.data.batches.pixels import _inner

    batch = batch_of(processor, encoded)
    # [1, tiles, 3, H, W] stored as [1, tiles, H, W, 3]: tiles are cut and batched by whole-row copies.
    assert batch["pixel_values"].permute(0, 1, 3, 4, 2).is_contiguous()
    model = normalise_on_model(AutoModelForImageTextToText.from_pretrained(tiny_model).eval(),
                               processor.image_processor)
    seen = []  # registered after the normaliser, so it sees what the model's forward gets
    _inner(model).register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["pixel_values"]),
                                            with_kwargs=True)
    with torch.no_grad():
        model(**batch)
    assert seen[0].dtype == torch.float32 and seen[0].is_contiguous()
    torch.testing.assert_close(seen[0], float_batch(batch, encoded)["pixel_values"], rtol=0, atol=0)
