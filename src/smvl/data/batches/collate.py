"""Samples -> model batches: chat template, image blocks, labels, image-safe truncation, padding.

A sample is rendered with the chat template, cut into segments (prompt text, answer text, image blocks) and each
segment is tokenised on its own, so we know exactly which tokens are answer text and which belong to an image
block. Answers are found by the assistant header and turn end the template writes (`turns.py`), not by the eos.
Truncation (`truncate.py`) never cuts a prompt or an image block: when a sample is too long, whole trailing turns
are dropped while more than one is left, then the last answer is shortened from its end (keeping at least
`min_answer_tokens` of it, or all of a shorter one); only if the first turn's prompt and images still leave no room
are the images re-tiled with fewer tiles (if `retile`) and every turn tried again. A sample that still does not
fit, or whose text contains a marker or control token, is rejected with BadSample and counted by the caller.

Control tokens (the tokenizer's special tokens: `<|endoftext|>`, `<|im_start|>`, ...) written in a message's text
are refused, not escaped: the tokenizer would turn them into the control token itself (an answer that stops, or a
user text that opens a turn of its own), and learning them as literal characters would teach the model to print
them. In chat data they are leaks (template text pasted into a field, documents joined at their eos), so the
sample is skipped and counted ("control token in text"), as tiktoken refuses them by default; non-special added
tokens such as Qwen3's `<think>` are content and stay.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, field, replace

import torch
from transformers.models.smolvlm.processing_smolvlm import get_image_prompt_string

from smvl.data.batches.frames import frame_tiles, video_prompt
from smvl.data.batches.pixels import norm_of, normalise
from smvl.data.batches.template_support import TemplateSupport
from smvl.data.batches.tiles import FastTiler, supported
from smvl.data.batches.timing import StageTimer
from smvl.data.batches.truncate import Layout, fit
from smvl.data.batches.turns import TurnMarks
from smvl.data.samples.sample import BadSample, Sample, image_parts, media_order, texts_of, thinks, tool_calls, video_parts
from smvl.data.samples.video import VideoSampling
from smvl.errors import UserError

IGNORE = -100


@dataclass
class CollateOptions:
    max_length: int = 2048
    labels: str = "assistant"  # "assistant": answers only; "all": every text token (the reference recipe)
    padding: str = "longest"  # "longest" (rounded up to pad_to_multiple_of) or "max_length"
    pad_to_multiple_of: int = 8
    images: str = "first"  # "first": keep the first image only (reference); "all": up to max_images
    max_images: int = 4
    retile: bool = True
    min_answer_tokens: int = 16  # a shortened answer keeps at least this many tokens (a shorter one stays whole)
    # Tiles by `tiles.FastTiler` (one resize, same tiles and grids, ~4x faster) and lets JPEGs decode at reduced
    # scale; False: the processor's own image call and full decodes (the stock path `smvl bench data` compares).
    fast_images: bool = True
    # Think-or-not training: a sample with a thinking trace trains without it (in non-thinking mode, the empty think
    # block as prompt) with this probability, drawn per sample id and `seed`, so a resume or a worker draws the same.
    drop_thinking: float = 0.0
    seed: int = 0

    def __post_init__(self):
        for name, allowed in (("labels", ("assistant", "all")), ("padding", ("longest", "max_length")),
                              ("images", ("first", "all"))):
            if getattr(self, name) not in allowed:
                raise UserError(f"data.{name}={getattr(self, name)!r}; expected one of {', '.join(allowed)}")
        if self.min_answer_tokens < 1:
            raise UserError(f"min_answer_tokens={self.min_answer_tokens}; expected at least 1")
        if not 0 <= self.drop_thinking <= 1:
            raise UserError(f"data.drop_thinking={self.drop_thinking}; expected a probability from 0 to 1")


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    kinds: list[str]  # per token: "prompt", "answer" or "image"
    pixel_values: torch.Tensor | None = None  # [tiles, 3, H, W]: float, or uint8 with pixel_norm
    pixel_norm: tuple[torch.Tensor, torch.Tensor] | None = None  # uint8 tiles: float = x * scale - shift ([3, 1, 1])
    pixel_attention_mask: torch.Tensor | None = None  # [tiles, H, W] bool; None: all ones (no padded pixels)
    tiles: list[tuple[int, int]] = field(default_factory=list)  # (rows, cols) per image
    truncated: bool = False  # turns dropped or the last answer shortened (re-tiling shows in `tiles`)
    id: str = ""
    images_left_out: int = 0  # images `images: first` dropped from a multi-image sample (its questions still train)
    calls_left_out: int = 0  # tool calls truncation dropped, each with its result
    thinking: bool = False  # trains a thinking trace

    @property
    def image_tokens(self) -> int:
        return self.kinds.count("image")

    def pixels(self) -> torch.Tensor | None:
        """The tiles as the model sees them: float [tiles, 3, H, W], rescaled and normalised."""
        if self.pixel_values is None or self.pixel_norm is None:
            return self.pixel_values
        return normalise(self.pixel_values, *self.pixel_norm)


def apply_image_policy(sample: Sample, policy: str, max_images: int) -> Sample:
    """`all`: the sample, or BadSample past max_images. `first`: the sample with its first image only, as the
    reference recipe trains; the encoder counts the images left out (`Encoded.images_left_out`) so that `smvl data
    inspect` can say how much of a source this hides. Kept rather than skipped: the_cauldron has whole multi-image
    subsets, and skipping them would stop a run under the reference policy at its skip limit."""
    if len(sample.images) <= (1 if policy == "first" else max_images):
        return sample
    if policy == "all":
        raise BadSample("too many images", f"{len(sample.images)} > max_images={max_images}")
    seen, messages = 0, []
    for m in sample.messages:
        if isinstance(m["content"], list):
            parts = []
            for p in m["content"]:
                if p.get("type") == "image":
                    seen += 1
                    if seen > 1:
                        continue
                parts.append(p)
            m = {**m, "content": parts}
        messages.append(m)
    return replace(sample, messages=messages, images=sample.images[:1])


def frame_budgets(sample: Sample) -> list[int | None]:
    """Frames per video to try, most first: all (None), then halving down to one."""
    most = max((len(v) for v in sample.videos), default=0)
    budgets, count = [None], most // 2
    while count >= 1:
        budgets.append(count)
        count //= 2
    return budgets


def with_frames(sample: Sample, count: int | None, sampling: VideoSampling | None) -> Sample:
    """The sample with each video cut to `count` frames (None: to `sampling.max_frames`), spread evenly."""
    limit = count if count is not None else (sampling.max_frames if sampling else None)
    if not sample.videos or limit is None:
        return sample
    return replace(sample, videos=[v.subsample(limit) for v in sample.videos])


def without_thinking(sample: Sample) -> Sample:
    """The sample with every thinking trace taken out: its answers train in non-thinking mode."""
    messages = [{k: v for k, v in m.items() if k != "reasoning_content"} for m in sample.messages]
    return replace(sample, messages=messages)


def cut_points(messages: list[dict]) -> list[int]:
    """Indices of the assistant messages a truncated sample may end with: not a call whose results follow, so that
    a tool call and its result are kept together or dropped together."""
    return [i for i, m in enumerate(messages) if m["role"] == "assistant"
            and not (m.get("tool_calls") and i + 1 < len(messages) and messages[i + 1]["role"] == "tool")]


class Encoder:
    """Turns one Sample into token ids, labels and pixel tiles under CollateOptions."""

    def __init__(self, processor, options: CollateOptions | None = None):
        self.processor, self.options = processor, options or CollateOptions()
        self.tok = processor.tokenizer
        self.template = processor.chat_template
        self.marks = TurnMarks.of(self._render, self._ids)
        self.support = TemplateSupport.of(self._render)
        p = processor
        markers = (p.image_token, p.fake_image_token, p.global_image_token, getattr(p, "video_token", None),
                   self.marks.header, self.marks.end)
        self.markers = [m for m in dict.fromkeys(markers) if m]
        control = set(self.tok.all_special_tokens) | {t.content for t in self.tok.added_tokens_decoder.values()
                                                      if t.special}
        # Longest first, so that a token containing another is reported as itself.
        self._forbidden = re.compile("|".join(map(re.escape, sorted(set(self.markers) | control, key=len,
                                                                     reverse=True))))
        self.size = processor.image_processor.size["longest_edge"]
        self.tile = processor.image_processor.max_image_size["longest_edge"]
        self.tiler = FastTiler(processor.image_processor)
        self._blocks: dict[tuple[int, int], list[int]] = {}  # (rows, cols) -> an image block's token ids
        self.video_processor = getattr(processor, "video_processor", None)
        self.timer = StageTimer()  # "tokenise" (all but the image call) and "resize/tile"

    def _fast(self) -> bool:
        return self.options.fast_images and supported(self.processor.image_processor)

    def decode_size(self, width: int, height: int) -> tuple[int, int] | None:
        """`load_image`'s `draft`: how small a JPEG may be decoded without changing this encoder's output."""
        return self.tiler.decode_size(width, height) if self._fast() else None

    @property
    def sampling(self) -> VideoSampling | None:
        """The frames `load_video` should decode for this encoder (read at each call, as the tiler reads its
        processor: training sets the frame limits after loading)."""
        return VideoSampling.of(self.video_processor) if self.video_processor is not None else None

    def _render(self, messages, tools=None, **kwargs) -> str:
        return self.tok.apply_chat_template(messages, chat_template=self.template, tokenize=False,
                                            **({"tools": tools} if tools else {}), **kwargs)

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"] if text else []

    def _block(self, rows: int, cols: int) -> list[int]:
        """An image block's ids, tokenised once per grid: ~1,100 marker tokens cost ~3 ms a sample to tokenise."""
        if (rows, cols) not in self._blocks:
            p = self.processor
            self._blocks[rows, cols] = self._ids(get_image_prompt_string(
                rows, cols, p.image_seq_len, p.fake_image_token, p.image_token, p.global_image_token))
        return list(self._blocks[rows, cols])

    def _expand_videos(self, text: str, videos: list) -> tuple[str, list]:
        """Each video token in `text` replaced by the stock video prompt (one image token per frame); the videos
        not yet reached."""
        token = getattr(self.processor, "video_token", None)
        if not token or token not in text:
            return text, videos
        pieces = text.split(token)
        out = pieces[0]
        for piece in pieces[1:]:
            out += video_prompt(videos[0], self.processor.image_token) + piece
            videos = videos[1:]
        return out, videos

    def layout(self, messages: list[dict], grids: list[tuple[int, int]],
               videos: list | None = None, tools: list[dict] | None = None) -> tuple[list[int], list[str]]:
        """Token ids and per-token kinds of `messages` rendered whole (with `tools` in the system prompt), their
        images tiled as `grids` (frames of `videos` included, in token order, each (0, 0): one tile)."""
        ids, kinds, image, videos = [], [], 0, list(videos or [])
        for kind, piece in self.marks.split(self._render(messages, tools)):
            piece, videos = self._expand_videos(piece, videos)
            for k, text_piece in enumerate(piece.split(self.processor.image_token)):
                if k:
                    block = self._block(*grids[image])
                    ids += block
                    kinds += ["image"] * len(block)
                    image += 1
                piece_ids = self._ids(text_piece)
                ids += piece_ids
                kinds += [kind] * len(piece_ids)
        return ids, kinds

    def _check_text(self, sample: Sample) -> None:
        """Marker text in a message would be tokenised as the marker itself: a literal image token becomes a block
        with no image behind it (the layout runs out of tiles), the other image markers would carry loss under
        labels=all, and a header or turn end would move where answers start or stop. Any other control token is
        refused too (see the module's docstring). Tool schemas, calls and thinking traces are text the template
        writes, so they are checked too."""
        texts = [(m["role"] + " message", text) for m in sample.messages for text in texts_of(m)]
        texts += [("tool schema", json.dumps(sample.tools, ensure_ascii=False))] if sample.tools else []
        for where, text in texts:
            found = self._forbidden.search(text)
            if found:
                token = found.group()
                reason = "marker token in text" if token in self.markers else "control token in text"
                raise BadSample(reason, f"{token!r} in a {where}")

    def grid(self, image, size: int) -> tuple[int, int]:
        _, rows, cols = self.processor.image_processor.get_number_of_image_patches(
            image.height, image.width, {"size": {"longest_edge": size}}
        )
        return rows, cols

    def _turns(self, sample: Sample, answers: list[int], size: int, count: int) -> Layout:
        """The first `count` turns (up to and including the count-th answer), images resized to `size`."""
        messages = sample.messages[: answers[count - 1] + 1]
        images, videos = iter(sample.images[: image_parts(messages)]), sample.videos[: video_parts(messages)]
        frames = iter([frame_tiles(v, self.video_processor) for v in videos])
        items, grids = [], []  # token order: a PIL image, or a frame tile [3, T, T] uint8 (one tile, grid (0, 0))
        for kind in media_order(messages):
            if kind == "image":
                image = next(images)
                items.append(image)
                grids.append(self.grid(image, size))
            else:
                tiles = next(frames)
                items += list(tiles)
                grids += [(0, 0)] * len(tiles)
        return Layout(*self.layout(messages, grids, videos, sample.tools), items, grids, size, turns=count)

    def __call__(self, sample: Sample, pixels: bool = True) -> Encoded:
        """`pixels=False`: ids, labels and grids without tiles, so images need only their sizes (a resume walking
        past trained batches, `BatchStream.skipping`)."""
        with self.timer.stage("tokenise"):
            return self._encode(sample, pixels)

    def _encode(self, sample: Sample, pixels: bool = True) -> Encoded:
        o = self.options
        given = len(sample.images)
        sample = apply_image_policy(sample, o.images, o.max_images)
        if thinks(sample.messages) and o.drop_thinking and random.Random(f"{o.seed}:{sample.id}").random() < o.drop_thinking:
            sample = without_thinking(sample)
        answers = cut_points(sample.messages)
        if not answers:
            raise BadSample("no assistant turn")
        self._check_text(sample)
        lacking = self.support.missing(sample.messages, sample.tools)
        if lacking:
            raise BadSample("chat template cannot render it", f"the template drops {lacking}")
        if sample.videos and self.video_processor is None:
            raise BadSample("video unsupported", "the processor has no video processor")
        sizes = [self.size] + ([s for s in range(self.size - self.tile, 0, -self.tile)] if o.retile else [])
        # A call cut short is not JSON: an answer that ends in calls is kept whole or the sample does not fit.
        min_answer = 10**9 if sample.messages[answers[0]].get("tool_calls") else o.min_answer_tokens
        # Fewer frames are tried before the sample is given up: a shorter look at the clip still teaches.
        for frames in frame_budgets(sample):
            shown = with_frames(sample, frames, self.sampling)
            for size in sizes:
                try:
                    layout = fit(lambda count: self._turns(shown, answers, size, count), len(answers),
                                 o.max_length, min_answer)
                except BadSample as exc:
                    too_long = exc
                    continue
                enc = self._finish(sample.id, layout, pixels)
                enc.images_left_out = given - len(sample.images)
                kept = sample.messages[: answers[layout.turns - 1] + 1]
                enc.calls_left_out = tool_calls(sample.messages) - tool_calls(kept)
                enc.thinking = thinks(kept)
                return enc
        raise too_long

    def _finish(self, sid: str, layout: Layout, pixels: bool = True) -> Encoded:
        ids, kinds, images, grids = layout.ids, layout.kinds, layout.images, layout.grids
        if self.options.labels == "assistant":
            labels = [t if k == "answer" else IGNORE for t, k in zip(ids, kinds)]
        else:
            labels = [t if k != "image" else IGNORE for t, k in zip(ids, kinds)]
        pad_id = self.tok.pad_token_id
        labels = [IGNORE if t == pad_id and k != "answer" else lab for t, k, lab in zip(ids, kinds, labels)]
        labels[0] = IGNORE  # nothing precedes it, so nothing predicts it (and Trainer's token count agrees)
        enc = Encoded(ids, labels, kinds, tiles=grids, truncated=layout.truncated, id=sid)
        if images and pixels:
            with self.timer.stage("resize/tile"):
                got = self._tiles(enc, images, layout.size)
            if got != grids:
                raise BadSample("tiling mismatch", f"expected {grids}, image processor gave {got}")
        return enc

    def _tiles(self, enc: Encoded, images: list, size: int) -> list[tuple[int, int]]:
        """Sets enc's pixel_values [tiles, 3, T, T] (uint8 + pixel_norm on the fast path) and, where the processor
        padded some pixels, pixel_attention_mask [tiles, T, T] bool; returns the (rows, cols) per image."""
        if any(isinstance(item, torch.Tensor) for item in images):
            return self._tiles_with_frames(enc, images, size)
        if self._fast():
            enc.pixel_values, grids = self.tiler(images, size)
            enc.pixel_norm = self.tiler.norm()
            return grids
        out = self.processor.image_processor(
            [images], size={"longest_edge": size}, return_row_col_info=True, return_tensors="pt"
        )
        enc.pixel_values, mask = out["pixel_values"][0], out["pixel_attention_mask"][0].bool()
        enc.pixel_attention_mask = None if mask.all() else mask
        return list(zip(out["rows"][0], out["cols"][0]))

    def _tiles_with_frames(self, enc: Encoded, items: list, size: int) -> list[tuple[int, int]]:
        """Images tiled one by one between the ready frame tiles, all uint8 + pixel_norm (frames are normalised as
        images are: `build_processor` gives the video processor the image processor's rescale, mean and std)."""
        tiles, grids = [], []
        for item in items:
            if isinstance(item, torch.Tensor):
                tiles.append(item[None])
                grids.append((0, 0))
                continue
            if self._fast():
                pixels, got = self.tiler([item], size)
            else:
                got = self._stock_uint8(item, size, tiles)
                pixels = None
            if pixels is not None:
                tiles.append(pixels)
            grids += got
        enc.pixel_values = torch.cat(tiles)  # [tiles, 3, T, T] uint8
        enc.pixel_norm = norm_of(self.processor.image_processor)
        return grids

    def _stock_uint8(self, image, size: int, tiles: list) -> list[tuple[int, int]]:
        """The stock image call for one image, its float tiles brought back to uint8 for a batch with frames."""
        out = self.processor.image_processor([[image]], size={"longest_edge": size}, return_row_col_info=True,
                                             return_tensors="pt")
        scale, shift = norm_of(self.processor.image_processor)
        tiles.append(((out["pixel_values"][0] + shift) / scale).round().clamp(0, 255).to(torch.uint8))
        return list(zip(out["rows"][0], out["cols"][0]))


def collate(batch: list[Encoded], pad_id: int, options: CollateOptions) -> dict[str, torch.Tensor]:
    """Right-pad ids/labels; concatenate every sample's tiles in token order into pixel_values [1, tiles, 3, H, W]."""
    if options.padding == "max_length":
        width = options.max_length
    else:
        longest = max(len(e.input_ids) for e in batch)
        m = options.pad_to_multiple_of
        width = -(-longest // m) * m if m else longest
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, **image_tensors(batch)}


def image_tensors(batch: list[Encoded]) -> dict[str, torch.Tensor]:
    """Every sample's tiles in token order (the order the model fills image tokens in), as one [1, tiles, ...].
    Fast-path tiles stay uint8 and channels-last (as `FastTiler` makes them, so each sample's copy in is a plain
    memory copy): the model normalises them (`pixels.normalise_on_model`), so the workers do no float work and a
    quarter of the bytes cross to the main process and the GPU. Stock-path (float) tiles, or a mix, give float
    pixels, the uint8 ones normalised while copied in. `pixel_attention_mask` only where some pixel is padding:
    SmolVLM makes the all-ones mask itself when given none (a third more bytes than the uint8 pixels, for nothing)."""
    with_tiles = [e for e in batch if e.pixel_values is not None]
    if not with_tiles:
        return {}
    count = sum(e.pixel_values.shape[0] for e in with_tiles)
    raw = all(e.pixel_norm is not None for e in with_tiles)
    channels, height, width = with_tiles[0].pixel_values.shape[1:]
    if raw:
        pixels = batch_tensor((count, height, width, channels), torch.uint8).permute(0, 3, 1, 2)  # [tiles, 3, H, W]
    else:
        pixels = batch_tensor((count, channels, height, width), torch.float32)
    at = 0
    for e in with_tiles:
        n = e.pixel_values.shape[0]
        pixels[at : at + n].copy_(e.pixel_values)
        if e.pixel_norm is not None and not raw:
            scale, shift = e.pixel_norm
            pixels[at : at + n].mul_(scale).sub_(shift)
        at += n
    out = {"pixel_values": pixels[None]}
    if any(e.pixel_attention_mask is not None for e in with_tiles):
        mask = batch_tensor((count, height, width), torch.bool)  # [tiles, H, W]
        torch.cat([e.pixel_attention_mask if e.pixel_attention_mask is not None
                   else torch.ones(e.pixel_values.shape[0], height, width, dtype=torch.bool) for e in with_tiles],
                  out=mask)
        out["pixel_attention_mask"] = mask[None]
    return out


def batch_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An empty contiguous tensor, in shared memory inside a DataLoader worker (as torch's default_collate
    allocates): the batch then crosses to the main process without the copy into shared memory pickling would
    make (strides included: a permuted view arrives as the same view)."""
    from torch.utils.data import get_worker_info

    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    like = torch.empty(0, dtype=dtype)
    storage = like._typed_storage()._new_shared(math.prod(shape), device="cpu")
    return like.new(storage).resize_(shape)
