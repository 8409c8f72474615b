"""The blind-model guard: before step 1 the image must move the loss and the trainable weights must get
gradient; during training a NaN/inf loss or a gradient norm stuck at zero stops the run with a clear message."""

from __future__ import annotations

import math

import torch
from transformers import TrainerCallback

from smvl.data.batches.pixels import inverted
from smvl.errors import UserError
from smvl.train.loss import labelled_loss, unwrap


class TrainingHalted(UserError):
    pass


def first_image_batch(stream, limit: int = 64) -> dict:
    """The first of the stream's first `limit` batches that holds an image (text-only samples may come first).
    Training reads these samples again, so what this look-ahead skips is not counted."""
    with stream.skips.paused():
        for i, batch in enumerate(stream):
            if "pixel_values" in batch:
                return batch
            if i + 1 >= limit:
                break
    raise TrainingHalted(f"none of the first {limit} training batches holds an image; "
                         "cannot verify that the model sees them (is the image source empty?)")


def preflight(model, batch: dict) -> str:
    """Raise TrainingHalted unless the image reaches the loss and every trainable component gets gradient."""
    if "pixel_values" not in batch:
        raise TrainingHalted("the first batch has no images; cannot verify that the model sees them")
    device = next(model.parameters()).device
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        base, count = labelled_loss(model, batch)
        flipped, _ = labelled_loss(model, {**batch, "pixel_values": inverted(batch["pixel_values"])})
    change = abs(base - flipped).item() / max(1, count.item())
    if not change > 0:
        raise TrainingHalted(
            "blind model: changing the image does not change the loss at labelled positions; check that "
            "config.image_token_id matches the processor's image token and that image tokens reach the LM"
        )
    model.train(was_training)
    model.zero_grad(set_to_none=True)
    labelled_loss(model, batch)[0].backward()
    dead = []
    inner = unwrap(model).model
    for name, module in (("connector", inner.connector), ("vision", inner.vision_model), ("text", inner.text_model)):
        params = [p for p in module.parameters() if p.requires_grad]
        if params and sum(p.grad.abs().sum().item() for p in params if p.grad is not None) == 0:
            dead.append(name)
    model.zero_grad(set_to_none=True)
    if dead:
        raise TrainingHalted(f"trainable {', '.join(dead)} parameters get no gradient from the loss")
    return f"preflight: the image moves the mean labelled loss by {change:.3g}; trainable parameters get gradient"


class GuardCallback(TrainerCallback):
    """Stops on a non-finite loss or grad norm, or `patience` optimizer steps in a row with zero gradient. The
    gradient norm is the one the Trainer computes before each optimizer step (`observe_grad_norm`)."""

    def __init__(self, patience: int):
        self.patience, self.zero_steps = patience, 0

    def observe_grad_norm(self, norm: float, step: int) -> None:
        if not math.isfinite(norm):
            raise TrainingHalted(f"gradient norm became {norm} at step {step}; lower the lr or check the data")
        self.zero_steps = self.zero_steps + 1 if norm == 0 else 0
        if self.zero_steps >= self.patience:
            raise TrainingHalted(f"gradient norm has been 0 for {self.zero_steps} steps (up to step {step}); "
                                 "nothing is learning")

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise TrainingHalted(f"loss became {loss} at step {state.global_step}; lower the lr or check the data")
