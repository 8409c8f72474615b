"""The spliced processor: the LLM's tokenizer, the VLM's image processor, and the extended chat template.

Image markers are the LLM's own reserved tokens where it has them (Qwen: `<|image_pad|>` for image features,
`<|vision_start|>` around each tile, `<|vision_pad|>` before the global image, `<|video_pad|>` for video), so
nothing is added to the vocabulary. The stock SmolVLM processor reads these names from tokenizer attributes
(`extra_special_tokens`), which is why the saved folder loads with plain `AutoProcessor`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from transformers import AutoImageProcessor, AutoTokenizer, SmolVLMProcessor, SmolVLMVideoProcessor

from smvl.splice.sources import SMALL_FILES, SourceError, resolve
from smvl.splice.template import TemplateError, extend_template

# processor attribute -> candidates, the LLM's reserved vision tokens first, SmolVLM's own names last.
MARKERS = {
    "image_token": ["<|image_pad|>", "<image>"],
    "fake_image_token": ["<|vision_start|>", "<fake_token_around_image>"],
    "global_image_token": ["<|vision_pad|>", "<global-img>"],
    "video_token": ["<|video_pad|>", "<video>"],
}


def image_seq_len(vision_config, scale_factor: int) -> int:
    """Features per tile after pixel shuffle: (image_size / patch_size)^2 / scale_factor^2."""
    patches = vision_config.image_size // vision_config.patch_size
    if patches % scale_factor:
        raise SourceError(
            f"scale factor {scale_factor} does not divide the {patches}x{patches} patch grid "
            f"(image_size {vision_config.image_size}, patch_size {vision_config.patch_size})"
        )
    return (patches // scale_factor) ** 2


def choose_markers(tokenizer, add_tokens: bool) -> dict[str, str]:
    """Pick one existing single token per marker; with `add_tokens`, add SmolVLM's names where none exists."""
    vocab = tokenizer.get_vocab()
    chosen, missing = {}, []
    for attr, candidates in MARKERS.items():
        found = next((c for c in candidates if c in vocab), None)
        if found is None:
            missing.append(attr)
            found = candidates[-1]
        chosen[attr] = found
    if missing and not add_tokens:
        raise SourceError(
            f"the LLM's tokenizer has no reserved tokens for {', '.join(missing)}; "
            "re-run with --add-tokens to add SmolVLM's markers to the vocabulary"
        )
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": [chosen[a] for a in missing]})
    return chosen


def build_processor(vision_dir: Path, text_dir: Path, vision_config, scale_factor: int, add_tokens: bool = False,
                    image_splitting: bool | None = None):
    """Assemble the SmolVLM processor for a splice of `vision_dir` onto `text_dir`; `image_splitting` None keeps the
    vision source's own setting."""
    tokenizer = AutoTokenizer.from_pretrained(text_dir)
    if not tokenizer.chat_template:
        raise SourceError(f"the LLM at {text_dir} has no chat template; smvl extends the LLM's own template")
    if tokenizer.eos_token is None:
        raise SourceError(f"the LLM's tokenizer at {text_dir} has no eos token")
    markers = choose_markers(tokenizer, add_tokens)
    tokenizer = _with_markers(tokenizer, markers)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        template = extend_template(tokenizer.chat_template, markers["image_token"], markers["video_token"])
    except TemplateError as exc:
        raise SourceError(f"{exc} ({text_dir})") from exc
    tokenizer.chat_template = template

    image_processor = AutoImageProcessor.from_pretrained(vision_dir)
    if image_splitting is not None:
        image_processor.do_image_splitting = image_splitting
    tile = image_processor.max_image_size["longest_edge"]
    if tile != vision_config.image_size:
        raise SourceError(
            f"image processor tiles are {tile}px but the vision tower takes {vision_config.image_size}px ({vision_dir})"
        )
    return SmolVLMProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor(vision_dir, image_processor, tile),
        image_seq_len=image_seq_len(vision_config, scale_factor),
        chat_template=template,
    )


def video_processor(vision_dir: Path, image_processor, tile: int) -> SmolVLMVideoProcessor:
    """SmolVLM2's video processor: frames resized to one tile, normalised as the images are, and the source's own
    `video_sampling` (SmolVLM2: 1 frame per second, at most 64) or those defaults where it has none."""
    try:
        source = SmolVLMVideoProcessor.from_pretrained(vision_dir)
        fps, frames = source.fps, source.num_frames
    except (OSError, ValueError):
        fps, frames = None, None
    return SmolVLMVideoProcessor(
        max_image_size={"longest_edge": tile}, size={"longest_edge": tile}, fps=fps or 1, num_frames=frames or 64,
        image_mean=image_processor.image_mean, image_std=image_processor.image_std,
        rescale_factor=image_processor.rescale_factor,
    )


def _with_markers(tokenizer, markers: dict[str, str]):
    """Reload through a temporary folder: `extra_special_tokens` given at load time is the supported way to make
    the marker names tokenizer attributes that survive save/load."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        return AutoTokenizer.from_pretrained(
            tmp, extra_special_tokens={**markers, "end_of_utterance_token": tokenizer.eos_token}
        )


def pair_processor(vision: str, text: str, scale_factor: int | None = None,
                   image_splitting: bool | None = None) -> tuple[SmolVLMProcessor, str]:
    """The processor a splice of `vision` + `text` gets, from the sources' small files only (no weights; hub
    sources are fetched once and the result cached), and a line saying what it tiles and how many tokens a tile
    costs."""
    import hashlib

    from transformers import AutoConfig, AutoProcessor

    from smvl.splice.presets import cache_dir

    key = hashlib.sha256(f"{vision}|{text}|{scale_factor}|{image_splitting}".encode()).hexdigest()[:16]
    cached = cache_dir() / "processors" / key
    if (cached / "processor_config.json").is_file():
        processor = AutoProcessor.from_pretrained(cached)
    else:
        vision_dir, text_dir = resolve(vision, SMALL_FILES), resolve(text, SMALL_FILES)
        vlm = AutoConfig.from_pretrained(vision_dir)
        # Markers added where the LLM has none: token counts are what matter here, and they are the same.
        processor = build_processor(vision_dir, text_dir, vlm.vision_config, scale_factor or vlm.scale_factor,
                                    add_tokens=True, image_splitting=image_splitting)
        processor.save_pretrained(cached)
    return processor, describe(processor)


def describe(processor) -> str:
    image = processor.image_processor
    splitting = "split into tiles + a global image" if image.do_image_splitting else "one tile each"
    return (f"images resized to a longest edge of {image.size['longest_edge']} px, {splitting} of "
            f"{image.max_image_size['longest_edge']} px, {processor.image_seq_len} tokens per tile")
