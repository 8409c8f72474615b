"""A built-in synthetic Chinese video-QA set: the synthetic shapes moving, appearing and disappearing.

No download, no video files: each clip is made in code as a `Video` (`frames` [F, 3, S, S] uint8, default 4 frames of
64x64 at 2 fps, one tile each for the tiny preset). Objects are the image set's shapes and colours
(`smvl.data.sources.synthetic`), distinct within a clip, on a plain light background.

| type | example | answers |
| --- | --- | --- |
| direction | 红色的圆形向哪个方向移动？ | 左边 右边 上边 下边 |
| first | 哪个物体先出现？ | 圆形 正方形 三角形 菱形 |
| count_last | 最后画面里有几个物体？ | 一个 两个 三个 四个 |

**Not answerable from the first frame**: a moving object starts at the centre (within 2 px) whatever its direction
(a still object, when there is one, sits in a corner); in `first` the first frame is empty and both objects are there at the end;
in `count_last` the first frame's count is drawn independently of the last frame's. So the first frame alone (the
frozen-frame control: every frame replaced by the first) or black frames leave every answer of a type equally
likely (a later frame alone can give `direction` and `count_last` away: the control is the first frame), and so does the question text: shape, colour, direction and counts are drawn uniformly and independently.

**Deterministic**: sample i depends only on (split, seed, i); each split has its own random stream.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image, ImageDraw

from smvl.data.samples.sample import Sample
from smvl.data.samples.video import Video
from smvl.data.sources.synthetic import COLOURS, COUNTS, SHAPES, SPLITS, _draw

DIRECTIONS = {"左边": (-1, 0), "右边": (1, 0), "上边": (0, -1), "下边": (0, 1)}
ANSWER_CLASSES = {"direction": list(DIRECTIONS), "first": SHAPES, "count_last": COUNTS}
KINDS = list(ANSWER_CLASSES)
PHRASINGS = {
    "direction": ["{colour}的{shape}向哪个方向移动？", "视频里{colour}的{shape}往哪边走？", "{colour}的{shape}朝哪个方向运动？"],
    "first": ["哪个物体先出现？", "视频里哪个图形最先出现？", "先出现的是什么形状？"],
    "count_last": ["最后画面里有几个物体？", "视频结束时有几个图形？", "最后一帧里一共有几个物体？"],
}
SOURCE = "synthetic-video"


def _frame(size: int, background, objects: list[tuple[str, str, tuple[float, float]]], extent: float) -> np.ndarray:
    """[S, S, 3] uint8: `objects` as (shape, colour, top-left corner)."""
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    for shape, colour, (x, y) in objects:
        _draw(draw, shape, (x, y, x + extent, y + extent), COLOURS[colour])
    return np.asarray(image)


def _corners(size: int, extent: float) -> list[tuple[float, float]]:
    far = size - extent - 2
    return [(2, 2), (far, 2), (2, far), (far, far)]


def _clip(rng: random.Random, kind: str, frames: int, size: int) -> tuple[list[np.ndarray], str, dict]:
    """The frames of one clip, its answer and what the question names."""
    background = tuple(int(rng.uniform(200, 250)) for _ in range(3))
    extent = size * 0.22
    shapes, colours = rng.sample(SHAPES, 4), rng.sample(list(COLOURS), 4)
    if kind == "direction":
        direction = rng.choice(list(DIRECTIONS))
        dx, dy = DIRECTIONS[direction]
        travel = size * 0.3  # the whole clip's movement from the centre: it stays clear of every edge
        centre = (size - extent) / 2
        x0, y0 = (centre + rng.uniform(-2, 2) for _ in range(2))
        still = [(shapes[1], colours[1], rng.choice(_corners(size, extent)))] if rng.random() < 0.5 else []
        out = []
        for f in range(frames):
            t = f / (frames - 1)  # the first frame is at the centre whatever the direction
            out.append(_frame(size, background, still + [(shapes[0], colours[0],
                                                          (x0 + dx * travel * t, y0 + dy * travel * t))], extent))
        return out, direction, {"shape": shapes[0], "colour": colours[0]}
    cells = rng.sample(_corners(size, extent), 4)
    if kind == "first":
        first_at = rng.randrange(1, frames - 1)
        second_at = rng.randrange(first_at + 1, frames)
        show = [[k for k, at in enumerate((first_at, second_at)) if f >= at] for f in range(frames)]
        answer = shapes[0]
    else:
        start, end = rng.randint(1, 4), rng.randint(1, 4)
        order = list(range(4))
        at_start, at_end = set(order[:start]), set(rng.sample(order, end))
        switch = rng.randrange(1, frames)
        show = [sorted(at_start if f < switch else at_end) for f in range(frames)]
        answer = COUNTS[end - 1]
    out = [_frame(size, background, [(shapes[k], colours[k], cells[k]) for k in keep], extent) for keep in show]
    return out, answer, {}


def generate(split: str, seed: int, index: int, frames: int = 4, size: int = 64, fps: float = 2.0) -> Sample:
    """Sample `index` of a split: one question about one clip."""
    if split not in SPLITS:
        raise ValueError(f"synthetic-video split {split!r}; choose one of {', '.join(SPLITS)}")
    rng = random.Random(f"smvl-synthetic-video/{split}/{seed}/{index}")
    kind = rng.choice(KINDS)
    pixels, answer, named = _clip(rng, kind, frames, size)
    question = rng.choice(PHRASINGS[kind]).format(**named)
    video = Video(torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous(),  # [F, 3, S, S] uint8
                  [f / fps for f in range(frames)], frames / fps, f"{SOURCE}-{split}-{index:06d}")
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]},
                {"role": "assistant", "content": answer}]
    return Sample(messages, [], id=f"{SOURCE}-{split}-{index:06d}", source=f"{SOURCE}:{kind}", videos=[video])


def synthetic_video_samples(split: str = "train", n: int = 1000, seed: int = 0) -> list[Sample]:
    return [generate(split, seed, i) for i in range(n)]
