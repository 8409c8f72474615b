"""uint8 tiles in batches, rescaled and normalised inside the model: the one place pixels become floats.

Our batches carry `pixel_values` as uint8 [1, tiles, 3, H, W] (a quarter of the bytes of float32 through the
DataLoader's shared memory and to the GPU, and no float work in the workers). `normalise_on_model` installs a
forward pre-hook on the model's SmolVLMModel that turns uint8 pixel values into what the stock processor computes,
x * rescale_factor then (x - image_mean) / image_std, done as x * (rescale_factor / std) - mean / std in float32
(bit-for-bit the processor's fused result), on the model's device, then cast to the model's dtype and laid out
channels-first as the processor's are (ours travel channels-last, see `FastTiler`). Float pixel
values (the stock processor's, at inference) pass through unchanged.

SmolVLM itself takes uint8 pixel values silently (it casts them to its dtype: values 0-255 where -1..1 belong),
so every place that hands our batches to a model calls `require_normaliser` first: a model without the hook then
fails loudly instead of training on garbage.
"""

from __future__ import annotations

import torch

_MARK = "_smvl_pixel_normaliser"  # the hook's handle, on the SmolVLMModel it is installed on


def _inner(model) -> torch.nn.Module:
    """The SmolVLMModel under any wrapper (DDP, FSDP, PEFT, ForConditionalGeneration). The hook goes there rather
    than on the outer model: however a wrapper calls the outer model (by `__call__` or, as some PEFT versions did,
    by `.forward`, which skips its hooks), the outer forward calls this one as a module, pixel_values by keyword."""
    from transformers.models.smolvlm.modeling_smolvlm import SmolVLMModel

    for module in model.modules():
        if isinstance(module, SmolVLMModel):
            return module
    raise TypeError(f"{type(model).__name__} holds no SmolVLMModel; our batches are for SmolVLM-layout models")


def norm_of(image_processor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), each float32 [3, 1, 1]: float = x * scale - shift == (x * rescale_factor - mean) / std."""
    p = image_processor
    std = torch.tensor(p.image_std, dtype=torch.float32).view(3, 1, 1)
    mean = torch.tensor(p.image_mean, dtype=torch.float32).view(3, 1, 1)
    return p.rescale_factor / std, mean / std


def normalise(pixels: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """uint8 [..., 3, H, W] -> float32, on pixels' device."""
    return pixels.float().mul_(scale.to(pixels.device)).sub_(shift.to(pixels.device))


def normalise_on_model(model, image_processor):
    """Make `model` accept uint8 pixel_values, normalised as `image_processor` would (idempotent); returns it."""
    inner = _inner(model)
    if getattr(inner, _MARK, None) is not None:
        return model
    scale, shift = norm_of(image_processor)

    def hook(module, args, kwargs):
        pixels = kwargs.get("pixel_values")
        if pixels is None or pixels.dtype != torch.uint8:
            return None
        param = next(module.parameters())
        floats = normalise(pixels.to(param.device, non_blocking=True), scale, shift)
        # Our tiles are channels-last in memory (`FastTiler`); the model gets the layout the processor's have.
        return args, {**kwargs, "pixel_values": floats.to(param.dtype).contiguous()}

    setattr(inner, _MARK, inner.register_forward_pre_hook(hook, with_kwargs=True))
    return model


def has_normaliser(model) -> bool:
    return getattr(_inner(model), _MARK, None) is not None


def require_normaliser(model, inputs: dict) -> None:
    """Raise unless `model` can take `inputs`' pixel values: uint8 ones need `normalise_on_model`."""
    pixels = inputs.get("pixel_values")
    if pixels is not None and pixels.dtype == torch.uint8 and not has_normaliser(model):
        raise RuntimeError("uint8 pixel_values reached a model without the pixel normaliser: it would see values "
                           "0-255; prepare the model with smvl.data.batches.pixels.normalise_on_model(model, processor)")


def inverted(pixels: torch.Tensor) -> torch.Tensor:
    """A different image of the same shape and dtype (the preflight's contrast): 255 - x for uint8, -x for floats."""
    return 255 - pixels if pixels.dtype == torch.uint8 else -pixels
