"""The tiny preset's random vision tower starts with position embeddings as loud as a patch's content, so training
keeps in the features where each token is (the demo's position questions depend on it; presets.build_tiny_vision)."""

from __future__ import annotations

import random

import torch
from transformers import SmolVLMForConditionalGeneration, SmolVLMImageProcessor

from smvl.data.sources.synthetic import scene


def test_the_tiny_towers_position_embeddings_are_as_loud_as_a_patchs_content(tiny_sources):
    folder = tiny_sources / "vision"
    model = SmolVLMForConditionalGeneration.from_pretrained(folder)
    embeddings = model.model.vision_model.embeddings
    images = [scene(random.Random(i))[0] for i in range(8)]
    processor = SmolVLMImageProcessor.from_pretrained(folder)
    pixels = processor(images, do_image_splitting=False, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        content = embeddings.patch_embedding(pixels.flatten(0, 1))  # (images, width, 8, 8): one vector per patch
        position_norm = embeddings.position_embedding.weight.norm(dim=1).mean()
    content_norm = content.flatten(2).norm(dim=1).mean()
    # transformers' own init (std 0.02) gives a ratio of ~0.1, which training washed out of the features
    assert position_norm > 0.5 * content_norm, (float(position_norm), float(content_norm))
