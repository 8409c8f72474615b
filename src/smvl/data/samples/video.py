"""Safe video decoding (PyAV) and SmolVLM2's frame sampling; bad videos as BadSample, never a crash.

A video is a path (a file, or a folder of frame images), bytes, or a `data:video/...;base64,` string. Before any
frame is decoded the container header is checked: a video stream must exist (an audio-only file is "no video
stream"), its frame size must be under `MAX_FRAME_PIXELS` and its duration under `MAX_SECONDS`, and a file must be a
regular file of at most `MAX_FILE_BYTES`. Frames are then chosen as SmolVLMVideoProcessor.sample_frames chooses them
(at most `max_frames`, about `fps` per second, a second skipped at both ends of a long video) and decoded in one
pass that stops at the last frame wanted. Timestamps come from each frame's own presentation time, counted from the
first frame as transformers counts them (a clip cut from 30 s in is "Frame from 00:00"), so a variable frame rate
gives the right times in the prompt. Frames larger than the processor's `longest` edge are scaled down while decoded
(libswscale), as the processor would first do anyway; the shape the model sees is unchanged.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from smvl.data.samples.sample import BadSample

MAX_FILE_BYTES = 2 * 2**30
MAX_SECONDS = 3 * 3600
MAX_FRAME_PIXELS = 4096 * 4096
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
FOLDER_FPS = 1.0  # a folder of frames is taken as sampled at one per second unless its record says `fps`


@dataclass(frozen=True)
class VideoSampling:
    """How many frames to take: SmolVLM2's `video_sampling` (fps 1, at most 64 frames) unless the processor says."""

    fps: float = 1.0
    max_frames: int = 64
    longest: int | None = None  # frames decoded at most this long on their longest edge (None: as stored)
    max_seconds: float | None = None  # a longer video is refused (None: MAX_SECONDS)

    @property
    def seconds_limit(self) -> float:
        return MAX_SECONDS if self.max_seconds is None else self.max_seconds

    @classmethod
    def of(cls, video_processor) -> "VideoSampling":
        size = getattr(video_processor, "size", None) or {}
        longest = size.get("longest_edge") if isinstance(size, dict) else getattr(size, "longest_edge", None)
        return cls(float(video_processor.fps or cls.fps), int(video_processor.num_frames or cls.max_frames), longest)


@dataclass
class Video:
    """Sampled frames [F, 3, H, W] uint8 and when each was shown (seconds from the start)."""

    frames: torch.Tensor
    timestamps: list[float]
    duration: float
    source: str = field(default="", compare=False)

    def __len__(self) -> int:
        return self.frames.shape[0]

    def subsample(self, count: int) -> "Video":
        """`count` frames spread evenly over these (the first and last kept), for a sample that must shrink."""
        if count >= len(self):
            return self
        keep = np.unique(np.linspace(0, len(self) - 1, max(count, 1), dtype=int)).tolist()
        return replace(self, frames=self.frames[keep], timestamps=[self.timestamps[i] for i in keep])

    def frozen(self) -> "Video":
        """Every frame replaced by the first (timestamps kept): the control that tells motion from one frame."""
        return replace(self, frames=self.frames[:1].expand_as(self.frames).clone())

    def blank(self) -> "Video":
        """Every frame black (timestamps kept)."""
        return replace(self, frames=torch.zeros_like(self.frames))


def sample_indices(total: int, fps: float, duration: float, sampling: VideoSampling) -> list[int]:
    """SmolVLMVideoProcessor.sample_frames' choice of frame indices, for a video of `total` frames."""
    from transformers import SmolVLMVideoProcessor
    from transformers.video_utils import VideoMetadata

    meta = VideoMetadata(total_num_frames=total, fps=fps, duration=duration)
    processor = SmolVLMVideoProcessor(num_frames=sampling.max_frames, fps=sampling.fps)
    return [int(i) for i in processor.sample_frames(meta, num_frames=sampling.max_frames, fps=sampling.fps)]


def load_video(obj, base_dir: str | Path | None = None, sampling: VideoSampling | None = None,
               max_seconds: float | None = None) -> Video:
    """A path, folder of frames, bytes, {"path"/"bytes", "fps"} dict or data URI -> Video, or BadSample;
    `max_seconds` lowers MAX_SECONDS (the server's limit)."""
    sampling = sampling or VideoSampling()
    if max_seconds is not None:
        sampling = replace(sampling, max_seconds=min(max_seconds, MAX_SECONDS))
    base = Path(base_dir) if base_dir is not None else None
    if isinstance(obj, Video):
        return obj
    if isinstance(obj, (bytes, bytearray)):
        return _decode(io.BytesIO(bytes(obj)), "<bytes>", sampling)
    if isinstance(obj, dict):
        if obj.get("bytes"):
            return _decode(io.BytesIO(obj["bytes"]), "<bytes>", sampling)
        if obj.get("path"):
            return _from_path(_resolve(obj["path"], base), sampling, obj.get("fps"))
        raise BadSample("missing video", "video record has neither bytes nor path")
    if isinstance(obj, str) and obj.startswith("data:"):
        return _decode(io.BytesIO(data_uri_bytes(obj)), "<data URI>", sampling)
    if isinstance(obj, (str, Path)):
        return _from_path(_resolve(obj, base), sampling)
    raise BadSample("missing video", f"unsupported video value of type {type(obj).__name__}")


def data_uri_bytes(text: str) -> bytes:
    header, _, payload = text.partition(",")
    if ";base64" not in header:
        raise BadSample("bad base64", "data URI is not base64-encoded")
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadSample("bad base64", str(exc)) from exc


def _resolve(path, base: Path | None) -> Path:
    path = Path(path)
    return base / path if base is not None and not path.is_absolute() else path


def _from_path(path: Path, sampling: VideoSampling, fps=None) -> Video:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise BadSample("missing video file", str(path)) from exc
    except IsADirectoryError:
        return _from_folder(path, sampling, fps)
    except (OSError, ValueError) as exc:
        raise BadSample("unreadable video file", f"{path}: {exc}") from exc
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        os.close(fd)
        return _from_folder(path, sampling, fps)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise BadSample("not a regular file", str(path))
    if info.st_size > MAX_FILE_BYTES:
        os.close(fd)
        raise BadSample("video file too large", f"{path}: {info.st_size:,} bytes (limit {MAX_FILE_BYTES:,})")
    with os.fdopen(fd, "rb") as f:
        return _decode(f, str(path), sampling)


def _from_folder(path: Path, sampling: VideoSampling, fps=None) -> Video:
    """A folder of frame images, in name order, shown at `fps` (default FOLDER_FPS)."""
    from smvl.data.samples.images import load_image

    files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not files:
        raise BadSample("no frames", f"{path} holds no {'/'.join(FRAME_SUFFIXES)} files")
    fps = float(fps or FOLDER_FPS)
    duration = len(files) / fps
    if duration > sampling.seconds_limit:
        raise BadSample("video too long", f"{path}: {duration:.0f} s (limit {sampling.seconds_limit:g} s)")
    keep = sample_indices(len(files), fps, duration, sampling)
    images = [load_image(files[i]) for i in keep]
    if len({im.size for im in images}) > 1:
        raise BadSample("frames differ in size", str(path))
    frames = torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in images])  # [F, 3, H, W]
    return Video(frames, [i / fps for i in keep], duration, str(path))


def _decode(f, name: str, sampling: VideoSampling) -> Video:
    import av

    try:
        container = av.open(f, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise BadSample("corrupt video", f"{name}: {type(exc).__name__}: {exc}") from exc
    with container:
        streams = container.streams.video
        if not streams:
            raise BadSample("no video stream", name)
        stream = streams[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise BadSample("empty video", f"{name}: {width}x{height}")
        if width * height > MAX_FRAME_PIXELS:
            raise BadSample("video too large", f"{name}: {width}x{height} frames (limit {MAX_FRAME_PIXELS:,} pixels)")
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        duration = _duration(container, stream)
        if duration is not None and duration > sampling.seconds_limit:
            raise BadSample("video too long", f"{name}: {duration:.0f} s (limit {sampling.seconds_limit:g} s)")
        total = stream.frames or (round(duration * fps) if duration else 0)
        if total <= 0:
            raise BadSample("no frames", f"{name}: the header gives no duration or frame count")
        wanted = set(sample_indices(total, fps, duration or total / fps, sampling))
        out_size = _decode_size(width, height, sampling.longest)
        frames, times, first = [], [], None
        try:
            for index, frame in enumerate(container.decode(stream)):
                if first is None:
                    first = frame.time or 0.0  # a cut clip or MPEG-TS may start at 30 s: time counts from here
                shown = index / fps if frame.time is None else frame.time - first
                if shown > sampling.seconds_limit:
                    raise BadSample("video too long", f"{name}: frames past {sampling.seconds_limit:g} s")
                if index in wanted:
                    frames.append(frame.to_ndarray(format="rgb24", width=out_size[0], height=out_size[1]))
                    times.append(float(shown))
                    if len(frames) == len(wanted):
                        break
        except av.error.FFmpegError as exc:
            raise BadSample("corrupt video", f"{name}: {type(exc).__name__}: {exc}") from exc
    if not frames:
        raise BadSample("no frames", f"{name}: no frame decoded")
    pixels = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()  # [F, 3, H, W] uint8
    return Video(pixels, times, duration or (times[-1] + 1 / fps), name)


def _duration(container, stream) -> float | None:
    """Seconds from the first frame to the end, from the header. A stream's duration is its length; a container's
    may be its end time instead (Matroska: 32 s for a 2 s clip starting at 30 s), so a start before it comes off."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        start = container.start_time if container.start_time and container.start_time > 0 else 0
        length = container.duration - start if start < container.duration else container.duration
        return length / 1_000_000  # av.time_base: microseconds
    return None


def _decode_size(width: int, height: int, longest: int | None) -> tuple[int, int]:
    """(width, height) to decode at: scaled so the longest edge is at most `longest`, even sides as swscale likes."""
    if not longest or max(width, height) <= longest:
        return width, height
    scale = longest / max(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)
