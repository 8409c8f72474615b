"""A built-in synthetic Chinese visual-QA set: coloured shapes, Chinese questions, short Chinese answers.

No download: the default data of the offline training demo, small enough for a tiny random model to learn on a CPU.

**Images** (`image_size`, default 96x96 RGB): a light background, a gradient between two random tints in a random
direction plus a little noise, with 1-4 objects, one per quadrant (jittered inside it, so they never overlap and
sit clearly left/right and above/below the centre lines), each 60-85% of a quadrant wide. Objects have distinct
shapes (圆形 正方形 三角形 菱形) and distinct colours (红色 绿色 蓝色 黄色 紫色), so naming one attribute names one
object.

**Questions**, 2-3 phrasings each, answered with one short phrase:

| type | example | answers |
| --- | --- | --- |
| colour | 图中的圆形是什么颜色？ | 红色 绿色 蓝色 黄色 紫色 |
| shape | 红色的物体是什么形状？ | 圆形 正方形 三角形 菱形 |
| count | 图中有几个物体？ | 一个 两个 三个 四个 |
| horizontal | 红色的圆形在左边还是右边？ | 左边 右边 |
| vertical | 蓝色的物体在上边还是下边？ | 上边 下边 |

**Unanswerable blind**: scene and asked-about object are random, and shape, colour, quadrant and object count are
drawn independently, so given the question text every answer of its type is equally likely. A fraction of the
samples (`multi_turn_fraction`, default 20%) asks 2-3 questions about one object of the same image (the image
part only in the first user turn, follow-ups may say 它); types are chosen so that no earlier turn gives the
answer away. `Sample.source` is `synthetic:<type>,<type>...`, one type per turn.

**Scene descriptions** (`scene_fraction`, default 0; the demo trains with half): a sample may instead ask for the
whole scene and get every object, `Sample.source` `synthetic:scene`, a third each listed by position (描述图中的物体。
-> 左上红色圆形，右下蓝色三角形: top row first, corner + colour + shape), by colour (按颜色说出图中的物体和位置。 ->
红色圆形左上，...: 红 绿 蓝 黄 紫, colour + shape + corner) or by shape (按形状说出图中的物体和位置。 -> 圆形红色左上，...).
Every answer token is about the image, so the tower and the LLM learn what each object looks like and where it is
long before the questions alone would teach it (a curriculum, as captions are for the real pair); listed by colour
or shape, each object's other attributes must be found from the one just named, as a question finds its object.
The held-out questions never include them.

**Deterministic**: sample i depends only on (split, seed, i, image_size, multi_turn_fraction, scene_fraction); each
split has its own random stream, so train and test share no samples.
"""

from __future__ import annotations

import functools
import math
import random

import numpy as np
from PIL import Image, ImageDraw

from smvl.data.samples.sample import Sample

# Far apart in RGB and from any light background, so a low-resolution vision tower cannot mix them up.
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
KINDS = list(ANSWER_CLASSES)
POSITIONAL = ("horizontal", "vertical")
PHRASINGS = {
    "colour": ["图中的{shape}是什么颜色？", "{shape}是什么颜色的？", "请问图里的{shape}是什么颜色？"],
    "shape": ["{colour}的物体是什么形状？", "图里{colour}的东西是什么形状？", "请问{colour}的图形是什么形状？"],
    "count": ["图中有几个物体？", "图里一共有几个图形？", "请数一数图中有几个物体。"],
    "horizontal": ["{name}在左边还是右边？", "图中{name}位于左边还是右边？"],
    "vertical": ["{name}在上边还是下边？", "图中{name}位于上边还是下边？"],
}
# How a position question names its object; each is unique since shapes and colours are distinct in a scene.
NAMES = ["{colour}的{shape}", "{colour}的物体", "{shape}"]
SCENE_QUESTIONS = ["描述图中的物体。", "图里有哪些物体？请说出位置、颜色和形状。"]
# Descriptions listed by colour or by shape: each object's other attributes then have to be found from the one
# named, as the questions find their object (a colour question names the shape, a shape question the colour).
SCENE_ORDERS = {"position": SCENE_QUESTIONS, "colour": ["按颜色说出图中的物体和位置。"],
                "shape": ["按形状说出图中的物体和位置。"]}
CORNERS = {(0, 0): "左上", (1, 0): "右上", (0, 1): "左下", (1, 1): "右下"}  # (col, row)
FOLLOW_UPS = {"horizontal": "那它在左边还是右边？", "vertical": "那它在上边还是下边？"}
SPLITS = ("train", "test", "validation")
CELLS = [(col, row) for row in (0, 1) for col in (0, 1)]


@functools.cache
def _grid(size: int) -> np.ndarray:
    return np.mgrid[0:size, 0:size].astype(np.float32)  # (2, size, size): row, column


def _background(rng: random.Random, size: int) -> Image.Image:
    # in place (the demo makes 24,000), in the order of `a + (b - a) * t + noise * scale`: the same pixels as ever
    a, b = (np.array([rng.uniform(190, 255) for _ in range(3)], dtype=np.float32) for _ in range(2))
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = _grid(size)
    t = math.cos(angle) * xs
    t += math.sin(angle) * ys
    low = t.min()
    span = max(1e-6, float(t.max() - low))
    t -= low
    t /= span
    noise = np.random.default_rng(rng.getrandbits(32)).standard_normal((size, size, 3), dtype=np.float32)
    noise *= np.float32(rng.uniform(0, 8))
    pixels = (b - a) * t[..., None]
    pixels += a
    pixels += noise
    return Image.fromarray(np.clip(pixels, 0, 255, out=pixels).astype(np.uint8))


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


def scene(rng: random.Random, size: int = 96) -> tuple[Image.Image, list[dict]]:
    """A random image and its objects: shape, colour, quadrant column/row (0 = left/top) and pixel box."""
    n = rng.randint(1, 4)
    image = _background(rng, size)
    draw = ImageDraw.Draw(image)
    half = size / 2
    objects = []
    for shape, colour, (col, row) in zip(rng.sample(SHAPES, n), rng.sample(list(COLOURS), n), rng.sample(CELLS, n)):
        extent = half * rng.uniform(0.6, 0.85)
        # a 6% margin on every side of the quadrant keeps objects apart and off the centre lines
        x0 = col * half + rng.uniform(0.06 * half, 0.94 * half - extent)
        y0 = row * half + rng.uniform(0.06 * half, 0.94 * half - extent)
        box = (x0, y0, x0 + extent, y0 + extent)
        _draw(draw, shape, box, COLOURS[colour])
        objects.append({"shape": shape, "colour": colour, "col": col, "row": row, "box": box})
    return image, objects


def _plan(rng: random.Random, multi: bool) -> list[str]:
    """Question types of one conversation, all about one object.

    A colour question names the shape and a shape question the colour, and position questions may name both, so a
    conversation has at most one of colour/shape, before any position question: no answer is in an earlier turn.
    """
    if not multi:
        return [rng.choice(KINDS)]
    while True:
        kinds = rng.sample(KINDS, rng.choice((2, 3)))
        if not {"colour", "shape"} <= set(kinds):
            return sorted(kinds, key=lambda k: k in POSITIONAL)  # stable: otherwise the random order stays


def answer(kind: str, obj: dict, objects: list[dict]) -> str:
    """The answer to a question of `kind` about `obj` of the scene `objects`."""
    return {
        "colour": obj["colour"],
        "shape": obj["shape"],
        "count": COUNTS[len(objects) - 1],
        "horizontal": ANSWER_CLASSES["horizontal"][obj["col"]],
        "vertical": ANSWER_CLASSES["vertical"][obj["row"]],
    }[kind]


def scene_answer(objects: list[dict], order: str = "position") -> str:
    """Every object of a scene. By position: top row first and left to right, corner + colour + shape (左上红色圆形，
    右下蓝色三角形); by colour (红 绿 蓝 黄 紫): colour + shape + corner (红色圆形左上); by shape: shape + colour + corner."""
    if order == "position":
        ordered = sorted(objects, key=lambda o: (o["row"], o["col"]))
        return "，".join(CORNERS[o["col"], o["row"]] + o["colour"] + o["shape"] for o in ordered)
    if order == "colour":
        ordered = sorted(objects, key=lambda o: list(COLOURS).index(o["colour"]))
        return "，".join(o["colour"] + o["shape"] + CORNERS[o["col"], o["row"]] for o in ordered)
    ordered = sorted(objects, key=lambda o: SHAPES.index(o["shape"]))
    return "，".join(o["shape"] + o["colour"] + CORNERS[o["col"], o["row"]] for o in ordered)


def _ask(rng: random.Random, kind: str, obj: dict, named_before: bool) -> str:
    if kind in POSITIONAL and named_before and rng.random() < 0.5:
        return FOLLOW_UPS[kind]
    name = rng.choice(NAMES).format(**obj)
    return rng.choice(PHRASINGS[kind]).format(name=name, **obj)


def generate(split: str, seed: int, index: int, image_size: int = 96,
             multi_turn_fraction: float = 0.2, scene_fraction: float = 0.0) -> tuple[Sample, list[dict]]:
    """Sample `index` of a split and the objects of its scene (for tests and debugging)."""
    if split not in SPLITS:
        raise ValueError(f"synthetic split {split!r}; choose one of {', '.join(SPLITS)}")
    # a string seed is hashed (sha512), so streams of different splits, seeds and indices never collide
    rng = random.Random(f"smvl-synthetic/{split}/{seed}/{index}")
    image, objects = scene(rng, image_size)
    # drawn from a stream of its own, so the question samples are the same whatever the fraction
    scene_rng = random.Random(f"smvl-synthetic-scene/{split}/{seed}/{index}")
    if scene_fraction and scene_rng.random() < scene_fraction:
        order = scene_rng.choice(list(SCENE_ORDERS))
        question = [{"type": "image"}, {"type": "text", "text": rng.choice(SCENE_ORDERS[order])}]
        messages = [{"role": "user", "content": question},
                    {"role": "assistant", "content": scene_answer(objects, order)}]
        return Sample(messages, [image], id=f"synthetic-{split}-{index:06d}", source="synthetic:scene"), objects
    kinds = _plan(rng, rng.random() < multi_turn_fraction)
    obj = rng.choice(objects)
    messages = []
    for t, kind in enumerate(kinds):
        text = _ask(rng, kind, obj, named_before=any(k != "count" for k in kinds[:t]))
        content = ([{"type": "image"}] if t == 0 else []) + [{"type": "text", "text": text}]
        messages += [{"role": "user", "content": content},
                     {"role": "assistant", "content": answer(kind, obj, objects)}]
    sample = Sample(messages, [image], id=f"synthetic-{split}-{index:06d}", source="synthetic:" + ",".join(kinds))
    return sample, objects


def make_sample(split: str, seed: int, index: int, image_size: int = 96, multi_turn_fraction: float = 0.2,
                scene_fraction: float = 0.0) -> Sample:
    return generate(split, seed, index, image_size, multi_turn_fraction, scene_fraction)[0]


def synthetic_samples(split: str = "train", n: int = 1000, seed: int = 0, image_size: int = 96,
                      multi_turn_fraction: float = 0.2) -> list[Sample]:
    """The first `n` samples of `split`; same arguments, same samples (pixels included)."""
    return [make_sample(split, seed, i, image_size, multi_turn_fraction) for i in range(n)]


def question_types(sample: Sample) -> list[str]:
    """The question type of each turn of a synthetic sample."""
    return sample.source.split(":", 1)[1].split(",")


def describe() -> str:
    """A short markdown description of the set, for docs and reports."""
    rows = "\n".join(
        f"| {kind} | {PHRASINGS[kind][0].format(shape='圆形', colour='红色', name='红色的圆形')} | "
        f"{' '.join(classes)} |"
        for kind, classes in ANSWER_CLASSES.items()
    )
    return (
        "Synthetic Chinese visual QA: 1-4 objects of distinct shapes and colours, one per quadrant, on a light "
        "tinted background; one short answer per question, uniform given the question text; 20% of samples "
        "(by default) ask 2-3 questions about one object.\n\n"
        f"| type | example | answers |\n| --- | --- | --- |\n{rows}\n"
    )
