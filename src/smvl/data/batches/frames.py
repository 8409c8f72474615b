"""A video as SmolVLM2 lays it out: the stock processor's prompt text around one single-tile block per frame.

SmolVLMProcessor expands a video token into "You are provided the following series of {N in words} frames from a
{H:MM:SS} [H:MM:SS] video.\\n", then "\\nFrame from MM:SS:" and one global-image block per frame, then "\\n\\n". Each
frame is resized to one square tile (longest edge to the video processor's size, then to the tile) by the stock
video processor's own resize, kept uint8 like the image tiles. Built from transformers' own constants, so a
trained model's prompt for a video is the one plain transformers makes.
"""

from __future__ import annotations

from datetime import timedelta

import torch
from transformers.image_utils import SizeDict
from transformers.models.smolvlm.processing_smolvlm import (
    DEFAULT_MEDIA_OUTTRO,
    DEFAULT_VIDEO_INTRO,
    FRAME_TIMESTAMP_MESSAGE,
    num2words,
)

from smvl.data.samples.video import Video


def video_prompt(video: Video, frame_marker: str) -> str:
    """The text a video token becomes, with `frame_marker` where each frame's image block goes."""
    duration = timedelta(seconds=int(video.duration))
    text = DEFAULT_VIDEO_INTRO.format(frame_count=num2words(len(video)), video_duration=str(duration))
    for second in video.timestamps:
        stamp = f"{int(second // 60):02d}:{int(second % 60):02d}"
        text += FRAME_TIMESTAMP_MESSAGE.format(timestamp=stamp) + frame_marker
    return text + DEFAULT_MEDIA_OUTTRO


def frame_tiles(video: Video, video_processor) -> torch.Tensor:
    """[F, 3, T, T] uint8: each frame as the stock video processor resizes it, before rescaling and normalising."""
    p = video_processor
    longest = p.size["longest_edge"] if isinstance(p.size, dict) else p.size.longest_edge
    return p.resize(video.frames, SizeDict(longest_edge=longest), resample=p.resample)
