"""Small video files written with PyAV for the video tests: moving bars, audio-only, truncated, VFR."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def frame_pixels(i: int, width: int, height: int) -> np.ndarray:
    """A white bar moving right over black: frame i differs from frame 0 wherever it matters."""
    a = np.zeros((height, width, 3), np.uint8)
    x = (i * 7) % max(width - 8, 1)
    a[:, x : x + 8] = 255
    return a


def write_video(path: Path, frames: int = 20, width: int = 64, height: int = 48, fps: int = 10,
                times: list[float] | None = None, start: float = 0.0) -> Path:
    """An MPEG-4 clip (in the container the suffix names); `times` (seconds per frame) gives a variable frame rate;
    `start` is the first frame's presentation time, as in a clip cut from a longer video."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.time_base = Fraction(1, 1000)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_pixels(i, width, height), format="rgb24")
            frame.pts = round((start + (times[i] if times else i / fps)) * 1000)
            frame.time_base = Fraction(1, 1000)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path
