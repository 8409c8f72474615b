"""Generation shared by chat, batch inference, the server and evaluation: load, build inputs, stream or batch."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import torch
from PIL import Image
from transformers import StoppingCriteriaList, TextIteratorStreamer

from smvl.errors import UserError
from smvl.infer.decode import TextDecoder


def pick_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is available (use --device cpu or auto)")
    return device


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "auto":
        # bf16 on the CPU is emulated and slower than fp32; on GPUs without bf16 fp32 is the safe choice.
        return torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]


def load(model_dir, dtype: str = "auto", device: str = "auto"):
    """A model folder or hub id -> (model in eval mode on the device, processor), with stock transformers classes."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from smvl.splice.sources import model_folder

    model_dir = model_folder(model_dir)
    device = pick_device(device)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=pick_dtype(dtype, device)).to(device).eval()
    return model, AutoProcessor.from_pretrained(model_dir)


def prompt_text(processor, messages: list[dict], thinking: bool, tools: list[dict] | None = None) -> str:
    """The prompt the model's own template writes; `tools` (OpenAI function schemas) go to its `tools` variable
    (Qwen3's lists them in the system turn). Assistant `tool_calls` arguments should be objects: Qwen3's template
    writes a string verbatim."""
    return processor.tokenizer.apply_chat_template(
        messages, chat_template=processor.chat_template, tokenize=False, add_generation_prompt=True,
        enable_thinking=thinking, tools=tools or None,
    )


def inputs_for(model, processor, conversations: list[list[dict]], images: list[list[Image.Image]],
               thinking: bool = False, videos: list[list] | None = None,
               tools: list[list[dict] | None] | None = None):
    """Left-padded batch inputs: generation appends on the right, so every row must end at the same column.

    Videos (`smvl.data.samples.video.Video`, one list per conversation) go through the stock processor, its own frame
    layout and timestamps: what plain transformers does with the same frames. `tools`: one list of tool schemas (or
    None) per conversation."""
    tools = tools or [None] * len(conversations)
    texts = [prompt_text(processor, c, thinking, t) for c, t in zip(conversations, tools)]
    kwargs = {"images": images} if any(images) else {}
    if videos and any(videos):
        kwargs.update(video_inputs(images, videos))
    return processor(text=texts, padding=True, padding_side="left", return_tensors="pt", **kwargs).to(model.device)


def video_inputs(images: list[list], videos: list[list]) -> dict:
    """The stock processor's video arguments: frames, and metadata giving each frame's timestamp."""
    from transformers.video_utils import VideoMetadata

    flat = [v for row in videos for v in row]
    if any(images) or any(len(row) != 1 for row in videos) or len({len(v) for v in flat}) > 1:
        # The stock call gives images and videos one `pixel_values`, and pads videos to the longest, which would
        # misstate a shorter one's frame count in its prompt.
        raise UserError("a batch with videos takes one video per conversation, all with the same frame count, and "
                        "no images")
    metadata = []
    for v in flat:
        fps = 1000.0  # timestamps exact to the millisecond: frames_indices / fps = the frame's own time
        meta = VideoMetadata(total_num_frames=len(v), fps=fps, duration=v.duration)
        meta.frames_indices = [round(t * fps) for t in v.timestamps]
        metadata.append(meta)
    return {"videos": [v.frames for v in flat], "video_metadata": metadata, "do_sample_frames": False}


def sampling(temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, max_new_tokens: int = 256,
             **extra) -> dict:
    """Greedy unless a temperature is given; explicit, so the model's own sampling defaults never apply silently."""
    if temperature <= 0:
        options = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    else:
        options = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": top_k or None}
    return {**options, "max_new_tokens": max_new_tokens, "use_cache": True, **extra}


def end_token_ids(model, processor) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    return (ids | {processor.tokenizer.eos_token_id}) - {None}


THINK = re.compile(r"^\s*<think>(.*?)(?:</think>|$)", re.DOTALL)


def split_thinking(text: str) -> tuple[str, str]:
    """'<think>plan</think>answer' -> ('plan', 'answer'); text without a think block -> ('', text)."""
    match = THINK.match(text)
    if not match:
        return "", text.strip()
    return match.group(1).strip(), text[match.end():].strip()


@torch.no_grad()
def generate_batch(model, processor, conversations: list[list[dict]], images: list[list[Image.Image]],
                   thinking: bool = False, batch_size: int = 16, videos: list[list] | None = None,
                   tools: list[list[dict] | None] | None = None, **options) -> list[str]:
    """One batched generate per `batch_size` conversations (KV cache on); the new text of each, stripped (tool-call
    and think blocks kept: they are not special tokens). A conversation with a video, or with a different frame
    count than its neighbours, goes in a batch of its own kind (`video_inputs`). `tools`: one list of tool schemas
    (or None) per conversation."""
    tools = tools or [None] * len(conversations)
    if videos and any(videos):
        return _video_batches(model, processor, conversations, images, thinking, batch_size, videos, tools,
                              **options)
    out = []
    for start in range(0, len(conversations), batch_size):
        inputs = inputs_for(model, processor, conversations[start:start + batch_size],
                            images[start:start + batch_size], thinking, tools=tools[start:start + batch_size])
        generated = model.generate(**inputs, **sampling(**options))
        new = generated[:, inputs["input_ids"].shape[1]:]
        out += [t.strip() for t in processor.batch_decode(new, skip_special_tokens=True)]
    return out


def _video_batches(model, processor, conversations, images, thinking, batch_size, videos, tools,
                   **options) -> list[str]:
    """Conversations grouped by frame count (one video, no images, batched), the rest one at a time; answers in
    the given order."""
    groups: dict[object, list[int]] = {}
    for i, (ims, vids) in enumerate(zip(images, videos)):
        key = len(vids[0]) if len(vids) == 1 and not ims else ("alone", i)
        groups.setdefault(key, []).append(i)
    out: dict[int, str] = {}
    for members in groups.values():
        for start in range(0, len(members), batch_size):
            chunk = members[start:start + batch_size]
            inputs = inputs_for(model, processor, [conversations[i] for i in chunk], [images[i] for i in chunk],
                                thinking, [videos[i] for i in chunk], [tools[i] for i in chunk])
            generated = model.generate(**inputs, **sampling(**options))
            new = generated[:, inputs["input_ids"].shape[1]:]
            out.update(zip(chunk, (t.strip() for t in processor.batch_decode(new, skip_special_tokens=True))))
    return [out[i] for i in range(len(conversations))]


class _Streamer(TextIteratorStreamer):
    """Text as soon as it is complete characters (see TextDecoder); records the generated ids for usage counts."""

    def __init__(self, tokenizer, token_ids: list[int]):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.token_ids = token_ids
        self.decoder = TextDecoder(tokenizer)

    def put(self, value) -> None:
        if self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        ids = value.reshape(-1).tolist()
        self.token_ids += ids
        if piece := self.decoder.feed(ids):
            self.on_finalized_text(piece)

    def end(self) -> None:
        self.next_tokens_are_prompt = True
        self.on_finalized_text(self.decoder.flush(), stream_end=True)


class _Cancel:
    """A stopping criterion that ends generation at the next step once its event is set."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class Generation:
    """One conversation generating on its own thread: iterate for text pieces; `cancel()` stops it early.

    After iteration, `token_ids` holds the generated ids and `finish_reason` is "stop" (an end token),
    "length" (max_new_tokens) or "cancelled". An exception inside generate is re-raised by the iteration.
    """

    def __init__(self, model, processor, inputs, cancel: threading.Event | None = None, **options):
        self.model, self.inputs, self.options = model, inputs, sampling(**options)
        self.prompt_tokens = int(inputs["input_ids"].shape[1])
        self.token_ids: list[int] = []
        self.error: BaseException | None = None
        self.cancelled = cancel or threading.Event()
        self.end_ids = end_token_ids(model, processor)
        # <think> and </think> are not special tokens in Qwen3, so they survive skip_special_tokens.
        self.streamer = _Streamer(processor.tokenizer, self.token_ids)
        self.stopping = StoppingCriteriaList([_Cancel(self.cancelled)])
        self.thread = threading.Thread(target=self._run, daemon=True, name="smvl-generation")

    def _run(self) -> None:
        try:
            with torch.no_grad():
                self.model.generate(**self.inputs, **self.options, streamer=self.streamer,
                                    stopping_criteria=self.stopping)
        except BaseException as exc:  # handed to the reading thread, which re-raises it
            self.error = exc
            self.streamer.end()

    def __iter__(self) -> Iterator[str]:
        if self.thread.ident is None:
            if self.cancelled.is_set():  # cancelled while waiting for its turn: nothing to generate
                return
            self.thread.start()
        for piece in self.streamer:
            if piece:
                yield piece
        self.thread.join()
        if self.error is not None:
            raise self.error

    def text(self) -> str:
        return "".join(self).strip()

    def cancel(self) -> None:
        self.cancelled.set()
        if self.thread.ident is not None:
            self.thread.join()

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def finish_reason(self) -> str:
        if self.token_ids and self.token_ids[-1] in self.end_ids:
            return "stop"
        return "cancelled" if self.cancelled.is_set() else "length"


def generate_stream(model, processor, messages: list[dict], images: list[Image.Image], thinking: bool = False,
                    cancel: threading.Event | None = None, videos: list | None = None, tools: list[dict] | None = None,
                    **options) -> Generation:
    """A Generation for one conversation: text pieces as they come (`<think>` and `<tool_call>` blocks included, for
    callers to style or parse)."""
    inputs = inputs_for(model, processor, [messages], [images], thinking, [videos] if videos else None, [tools])
    return Generation(model, processor, inputs, cancel, **options)
