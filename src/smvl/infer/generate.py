"""Generation shared by chat, batch inference and evaluation: load, build inputs, stream or batch."""

from __future__ import annotations

from collections.abc import Iterator
from threading import Thread

import torch
from PIL import Image


def pick_device(device: str = "auto") -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]


def load(model_dir, dtype: str = "auto", device: str = "auto"):
    """A model folder -> (model in eval mode on the device, processor), with stock transformers classes."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = pick_device(device)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=pick_dtype(dtype, device)).to(device).eval()
    return model, AutoProcessor.from_pretrained(model_dir)


def prompt_text(processor, messages: list[dict], thinking: bool) -> str:
    return processor.tokenizer.apply_chat_template(
        messages, chat_template=processor.chat_template, tokenize=False, add_generation_prompt=True,
        enable_thinking=thinking,
    )


def inputs_for(model, processor, conversations: list[list[dict]], images: list[list[Image.Image]],
               thinking: bool = False):
    """Left-padded batch inputs: generation appends on the right, so every row must end at the same column."""
    texts = [prompt_text(processor, c, thinking) for c in conversations]
    kwargs = {"images": images} if any(images) else {}
    return processor(text=texts, padding=True, padding_side="left", return_tensors="pt", **kwargs).to(model.device)


def sampling(temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, max_new_tokens: int = 256) -> dict:
    """Greedy unless a temperature is given; explicit, so the model's own sampling defaults never apply silently."""
    if temperature <= 0:
        return {"do_sample": False, "max_new_tokens": max_new_tokens, "temperature": None, "top_p": None, "top_k": None}
    return {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": top_k or None,
            "max_new_tokens": max_new_tokens}


@torch.no_grad()
def generate_batch(model, processor, conversations: list[list[dict]], images: list[list[Image.Image]],
                   thinking: bool = False, batch_size: int = 16, **options) -> list[str]:
    """One forward pass per batch (KV cache on); returns the new text of each conversation."""
    out = []
    for start in range(0, len(conversations), batch_size):
        inputs = inputs_for(model, processor, conversations[start:start + batch_size],
                            images[start:start + batch_size], thinking)
        generated = model.generate(**inputs, **sampling(**options))
        new = generated[:, inputs["input_ids"].shape[1]:]
        out += [t.strip() for t in processor.batch_decode(new, skip_special_tokens=True)]
    return out


def generate_stream(model, processor, messages: list[dict], images: list[Image.Image], thinking: bool = False,
                    **options) -> Iterator[str]:
    """Text pieces as they are generated (the `<think>` tags included, so callers can style them)."""
    return stream_inputs(model, processor, inputs_for(model, processor, [messages], [images], thinking), **options)


def stream_inputs(model, processor, inputs, **options) -> Iterator[str]:
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=False)
    end_tokens = {processor.tokenizer.eos_token, processor.tokenizer.pad_token}
    worker = Thread(target=model.generate, kwargs={**inputs, **sampling(**options), "streamer": streamer})
    worker.start()
    for piece in streamer:
        for token in end_tokens:
            piece = piece.replace(token, "")
        if piece:
            yield piece
    worker.join()
