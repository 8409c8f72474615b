"""A built-in synthetic Chinese visual-QA set: coloured shapes, Chinese questions, short Chinese answers.

Each image (96x96 by default) is a light, tinted, slightly noisy background with 1-4 objects, one per quadrant
(jittered), each with a distinct shape (圆形 正方形 三角形 菱形) and a distinct colour (红色 绿色 蓝色 黄色 紫色).
Question types, each with several phrasings:

| type | example | answers |
| --- | --- | --- |
| colour | 图中的圆形是什么颜色？ | 红色 绿色 蓝色 黄色 紫色 |
| shape | 红色的物体是什么形状？ | 圆形 正方形 三角形 菱形 |
| count | 图中有几个物体？ | 一个 两个 三个 四个 |
| horizontal | 红色的圆形在左边还是右边？ | 左边 右边 |
| vertical | 红色的圆形在上边还是下边？ | 上边 下边 |

Scenes are random and questions ask about a random object of the scene, so given the question alone every answer
of its type is equally likely: the set cannot be answered without looking. A fraction of samples (default 20%)
asks 2-3 questions about the same image in one conversation. Deterministic: sample i of a split depends only on
(split, seed, i); train and test use different streams.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

from smvl.data.sample import Sample

COLOURS = {"红色": (220, 30, 30), "绿色": (20, 160, 50), "蓝色": (30, 70, 225), "黄色": (235, 195, 0),
           "紫色": (145, 40, 175)}
SHAPES = ["圆形", "正方形", "三角形", "菱形"]
COUNTS = ["一个", "两个", "三个", "四个"]
ANSWER_CLASSES = {
    "colour": list(COLOURS),
    "shape": SHAPES,
    "count": COUNTS,
    "horizontal": ["左边", "右边"],
    "vertical": ["上边", "下边"],
}
PHRASINGS = {
    "colour": ["图中的{shape}是什么颜色？", "{shape}是什么颜色的？", "请问{shape}的颜色是什么？"],
    "shape": ["{colour}的物体是什么形状？", "图里{colour}的东西是什么形状？", "请问{colour}的图形是什么形状？"],
    "count": ["图中有几个物体？", "图里一共有几个图形？", "请数一数图中有几个物体。"],
    "horizontal": ["{colour}的{shape}在左边还是右边？", "图中{colour}的{shape}位于左边还是右边？"],
    "vertical": ["{colour}的{shape}在上边还是下边？", "图中{colour}的{shape}位于上边还是下边？"],
}
SPLIT_SALT = {"train": 0, "test": 1_000_003, "validation": 2_000_003}


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float], fill) -> None:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "圆形":
        draw.ellipse(box, fill=fill)
    elif shape == "正方形":
        draw.rectangle(box, fill=fill)
    elif shape == "三角形":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=fill)
    else:
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill)


def scene(rng: random.Random, size: int) -> tuple[Image.Image, list[dict]]:
    """A random image and its objects (shape, colour, quadrant column/row)."""
    n = rng.randint(1, 4)
    cells = rng.sample([(c, r) for r in (0, 1) for c in (0, 1)], n)
    objects = [
        {"shape": s, "colour": c, "col": col, "row": row}
        for s, c, (col, row) in zip(rng.sample(SHAPES, n), rng.sample(list(COLOURS), n), cells)
    ]
    tint = np.array([rng.randint(200, 255) for _ in range(3)], dtype=np.float32)
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, 6, (size, size, 3))
    image = Image.fromarray(np.clip(tint + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    half = size / 2
    for obj in objects:
        extent = half * rng.uniform(0.55, 0.8)
        x0 = obj["col"] * half + rng.uniform(0.05 * half, half * 0.95 - extent)
        y0 = obj["row"] * half + rng.uniform(0.05 * half, half * 0.95 - extent)
        _draw(draw, obj["shape"], (x0, y0, x0 + extent, y0 + extent), COLOURS[obj["colour"]])
    return image, objects


def question(rng: random.Random, objects: list[dict]) -> tuple[str, str, str]:
    """(type, question, answer) about a random object of the scene."""
    kind = rng.choice(list(PHRASINGS))
    obj = rng.choice(objects)
    text = rng.choice(PHRASINGS[kind]).format(shape=obj["shape"], colour=obj["colour"])
    answer = {
        "colour": obj["colour"],
        "shape": obj["shape"],
        "count": COUNTS[len(objects) - 1],
        "horizontal": "左边" if obj["col"] == 0 else "右边",
        "vertical": "上边" if obj["row"] == 0 else "下边",
    }[kind]
    return kind, text, answer


def make_sample(split: str, seed: int, index: int, image_size: int = 96, multi_turn_fraction: float = 0.2) -> Sample:
    rng = random.Random(seed * 10_000_019 + SPLIT_SALT[split] + index)
    image, objects = scene(rng, image_size)
    turns = rng.choice([2, 3]) if rng.random() < multi_turn_fraction else 1
    messages, kinds = [], []
    for t in range(turns):
        kind, text, answer = question(rng, objects)
        content = [{"type": "image"}, {"type": "text", "text": text}] if t == 0 else [{"type": "text", "text": text}]
        messages += [{"role": "user", "content": content}, {"role": "assistant", "content": answer}]
        kinds.append(kind)
    return Sample(messages, [image], id=f"synthetic-{split}-{index:06d}", source="synthetic:" + ",".join(kinds))


def synthetic_samples(split: str = "train", n: int = 1000, seed: int = 0, image_size: int = 96,
                      multi_turn_fraction: float = 0.2) -> list[Sample]:
    if split not in SPLIT_SALT:
        raise ValueError(f"synthetic split {split!r}; choose one of {', '.join(SPLIT_SALT)}")
    return [make_sample(split, seed, i, image_size, multi_turn_fraction) for i in range(n)]


def question_types(sample: Sample) -> list[str]:
    return sample.source.split(":", 1)[1].split(",")
