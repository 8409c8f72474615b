"""SmolVLM's image tiling, done in one resize: the same tiles and grids as the stock image processor, faster.

The stock processor (transformers' torchvision SmolVLMImageProcessor) resizes each image twice (longest edge to
`size`, then both sides up to whole tiles) in channels-first layout, shrinks the tiled pixels to the global image,
normalises in float, then copies every tile into a zero-filled padded batch with an int64 mask. Here the image goes
once from its decoded size to the final whole-tile size with the same filter (torch's LANCZOS kernel, which the
stock processor's torchvision backend calls too), in the channels-last uint8 layout PIL hands over (the layout that
kernel is fast in), tiles are cut from that by row copies into a channels-last uint8 tensor, and the global image
is resized from the decoded image. Shapes, grids and token counts are the stock ones; pixels differ where the stock
processor's second resize stretched the image, and slightly in the global tile (tests bound both). `decode_size`
says how small a JPEG may be decoded (PIL `draft`) without changing any of that.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as tvF
from transformers.image_utils import pil_torch_interpolation_mapping
from transformers.models.smolvlm.image_processing_smolvlm import (
    MAX_IMAGE_SIZE,
    _resize_output_size_rescale_to_max_len,
    _resize_output_size_scale_below_upper_bound,
)
from transformers.utils import is_torchvision_greater_or_equal

from smvl.data.batches.pixels import norm_of


def final_size(height: int, width: int, longest: int, tile: int, splitting: bool = True) -> tuple[int, int]:
    """(height, width) the stock processor's pixels end at before tiling: longest edge scaled to `longest`, then
    (when splitting) both sides rounded up to whole tiles as its `resize_for_vision_encoder` does, rounding
    included; without splitting, one tile."""
    if not splitting:
        return tile, tile
    height, width = _resize_output_size_rescale_to_max_len(height, width, max_len=longest)
    height, width = _resize_output_size_scale_below_upper_bound(height, width, max_len=MAX_IMAGE_SIZE)
    aspect = width / height
    if width >= height:
        width = math.ceil(width / tile) * tile
        height = math.ceil(int(width / aspect) / tile) * tile
    else:
        height = math.ceil(height / tile) * tile
        width = math.ceil(int(height * aspect) / tile) * tile
    return height, width


def supported(image_processor) -> bool:
    """Whether the fast path reproduces this processor's settings (else the stock call is used)."""
    p = image_processor
    return (bool(p.do_resize and p.do_rescale and p.do_normalize and p.do_pad)
            and "longest_edge" in p.size and "longest_edge" in p.max_image_size)


def _as_tensor(image: Image.Image) -> torch.Tensor:
    """[3, H, W] uint8, a channels-last view of the one copy PIL makes of its pixels."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only buffer: nothing here writes to it
        return torch.from_numpy(np.asarray(image)).permute(2, 0, 1)


def interpolation(resample) -> tvF.InterpolationMode:
    """The torchvision mode for a PIL filter, as the stock processor picks it: torchvision before 0.27 has no
    LANCZOS for tensors, and there stock falls back to BICUBIC (so must we, to give its pixels)."""
    mode = pil_torch_interpolation_mapping[resample]
    if mode == tvF.InterpolationMode.LANCZOS and not is_torchvision_greater_or_equal("0.27"):
        return tvF.InterpolationMode.BICUBIC
    return mode


class FastTiler:
    """`tiler(images, longest)` -> (pixel_values [tiles, 3, T, T] uint8, [(rows, cols)] per image): the stock
    processor's tiles for one sample's images, before rescaling and normalising. They stay uint8 in the batch too:
    the model normalises them (`pixels.normalise_on_model`). The tensor is channels-last in memory (strides of
    [tiles, T, T, 3]), as the resized image is: cutting tiles from it then copies whole pixel rows, where a
    channels-first copy gathers every byte (a third of the tiling time). No attention mask: every pixel of every
    tile is real, and SmolVLM builds that all-ones mask itself when given none."""

    def __init__(self, image_processor):
        self.processor = image_processor  # read at each call: training sets do_image_splitting after loading

    def norm(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift), each [3, 1, 1]: x * scale - shift == (x * rescale_factor - mean) / std."""
        return norm_of(self.processor)

    def _resize(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        if tuple(x.shape[-2:]) == (height, width):
            return x
        return tvF.resize(x, [height, width], interpolation=interpolation(self.processor.resample), antialias=True)

    def __call__(self, images: list[Image.Image], longest: int):
        p, tile = self.processor, self.processor.max_image_size["longest_edge"]
        sized, grids = [], []  # [3, H, W] uint8 each, at the final whole-tile size
        for image in images:
            height, width = final_size(image.height, image.width, longest, tile, p.do_image_splitting)
            decoded = _as_tensor(image)
            big = self._resize(decoded, height, width)
            rows, cols = height // tile, width // tile
            split = rows * cols > 1
            sized.append((decoded, big, rows, cols, split))
            grids.append((rows, cols) if split else (0, 0))
        count = sum(rows * cols + 1 if split else 1 for _, _, rows, cols, split in sized)
        out = torch.empty(count, 3, tile, tile, dtype=torch.uint8, memory_format=torch.channels_last)
        at = 0
        for decoded, big, rows, cols, split in sized:
            if split:
                # [3, rows*T, cols*T] viewed as [rows, cols, 3, T, T] (row-major, as the stock unfold orders them)
                tiles = big.unflatten(1, (rows, tile)).unflatten(3, (cols, tile)).permute(1, 3, 0, 2, 4)
                out[at : at + rows * cols].unflatten(0, (rows, cols)).copy_(tiles)
                at += rows * cols
                # The global image straight from the decoded one, where stock shrinks the tiled pixels: for a photo
                # or chart a tenth of the pixels to filter (half the tiling time), within a grey level of stock's.
                big = self._resize(decoded, tile, tile)
            out[at].copy_(big)
            at += 1
        return out, grids

    def decode_size(self, width: int, height: int) -> tuple[int, int] | None:
        """The size to ask PIL's JPEG `draft` for, or None to decode in full. Draft scales by 1/2, 1/4 or 1/8 and
        keeps the result at least the size asked; the largest scale is chosen whose decoded image is still no
        smaller than the final size on either side (the processor then only shrinks it, as it would the full one)
        and gives the same final size, hence the same grid and token count."""
        p = self.processor
        tile, longest, splitting = p.max_image_size["longest_edge"], p.size["longest_edge"], p.do_image_splitting
        target = final_size(height, width, longest, tile, splitting)
        for scale in (8, 4, 2):
            w, h = -(-width // scale), -(-height // scale)  # what draft decodes at this scale
            if h >= target[0] and w >= target[1] and final_size(h, w, longest, tile, splitting) == target:
                return width // scale, height // scale  # asking this makes PIL pick exactly `scale`
        return None
