"""`smvl bench generate`: time to first token and tokens/s, batch 1 and batch N, KV cache on."""

from __future__ import annotations

import time

import torch
from PIL import Image

from smvl.infer.generate import inputs_for, load, sampling, stream_inputs

PROMPT = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "请详细描述这张图片。"}]}]


def probe_image(size: int = 512) -> Image.Image:
    return Image.linear_gradient("L").resize((size, size)).convert("RGB")


def sync(model) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize()


def time_to_first_token(model, processor, image, new_tokens: int) -> tuple[float, float]:
    """(seconds to the first streamed token, total seconds) for one request."""
    inputs = inputs_for(model, processor, [PROMPT], [[image]])
    start = time.perf_counter()
    first = None
    for _ in stream_inputs(model, processor, inputs, max_new_tokens=new_tokens):
        first = first or time.perf_counter() - start
    return first or float("nan"), time.perf_counter() - start


@torch.no_grad()
def throughput(model, processor, image, batch: int, new_tokens: int) -> tuple[float, int]:
    """(seconds, tokens generated) for `batch` copies of the prompt, every row forced to `new_tokens`."""
    inputs = inputs_for(model, processor, [PROMPT] * batch, [[image]] * batch)
    sync(model)
    start = time.perf_counter()
    out = model.generate(**inputs, **sampling(max_new_tokens=new_tokens), min_new_tokens=new_tokens, use_cache=True)
    sync(model)
    return time.perf_counter() - start, (out.shape[1] - inputs["input_ids"].shape[1]) * batch


def bench_generate(model_dir, batch: int = 8, new_tokens: int = 32, dtype: str = "auto", device: str = "auto") -> str:
    model, processor = load(model_dir, dtype, device)
    image = probe_image(model.config.vision_config.image_size)
    time_to_first_token(model, processor, image, 2)  # warm-up: kernels, allocator, lazy init
    ttft, _ = time_to_first_token(model, processor, image, new_tokens)
    rows = [f"device {model.device}, dtype {model.dtype}, {new_tokens} new tokens per request",
            f"{'batch':>5} {'seconds':>9} {'tokens/s':>9} {'time to first token':>20}"]
    for size in sorted({1, batch}):
        seconds, tokens = throughput(model, processor, image, size, new_tokens)
        first = f"{ttft * 1000:.1f} ms" if size == 1 else "-"
        rows.append(f"{size:>5} {seconds:>9.3f} {tokens / seconds:>9.1f} {first:>20}")
    return "\n".join(rows)
