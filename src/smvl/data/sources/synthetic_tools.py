"""Built-in Chinese tool-calling and thinking sets on the synthetic scenes (`smvl.data.sources.synthetic`).

`synthetic-tools`: the system prompt offers three tools, the user shows a scene and asks; the assistant calls the
right tool with arguments read from the image, or answers directly when no tool is needed:

| kind | question | assistant |
| --- | --- | --- |
| record | 把图中的圆形记录下来。 | record_object(colour, shape, position): colour and corner read from the image |
| count | 数一数图中红色的物体。 | count_colour(colour); the count comes back from the tool |
| decline | 图中的菱形是什么颜色？ (no 菱形 in the scene) | decline(message="图中没有菱形。") |
| direct | 图中的圆形是什么颜色？ (a 圆形 in the scene) | 红色 (no tool) |

`decline` and `direct` ask the same question, so only the image says whether to answer or decline; `record`'s
colour and position are only in the image. Half of the tool samples go on: the tool's result (a `tool` message)
and a final Chinese answer built from it.

`synthetic-thinking`: the synthetic set's questions with a short thinking trace that lists the scene and finds the
object before the answer (图中有两个物体：左上红色圆形，右下蓝色三角形。圆形在左上，是红色。 -> 红色).

Both are deterministic (sample i depends only on split, seed and i), with `train` / `test` / `validation` splits
of their own random streams, as the synthetic set has.
"""

from __future__ import annotations

import random

from smvl.data.samples.sample import Sample
from smvl.data.sources.synthetic import (
    COLOURS,
    CORNERS,
    COUNTS,
    NAMES,
    SHAPES,
    SPLITS,
    _ask,
    _plan,
    answer,
    scene,
    scene_answer,
)


def function_tool(name: str, description: str, **properties: str) -> dict:
    """An OpenAI function tool whose parameters are the given required string properties (name -> description)."""
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": {k: {"type": "string", "description": v}
                                                        for k, v in properties.items()},
                       "required": list(properties)}}}


TOOLS = [
    function_tool("record_object", "记录图中一个物体", colour="颜色", shape="形状", position="左上、右上、左下或右下"),
    function_tool("count_colour", "数图中某种颜色的物体", colour="颜色"),
    function_tool("decline", "图中没有所问的物体时说明", message="给用户的话"),
]
TOOL_NAMES = [t["function"]["name"] for t in TOOLS]
SYSTEM = "你是看图助手，需要时调用工具。"
KIND_SHARES = {"record": 0.3, "count": 0.2, "decline": 0.25, "direct": 0.25}
RECORD = ["把图中的{shape}记录下来。", "请记录图里的{shape}。"]
COUNT = ["数一数图中{colour}的物体。", "图里{colour}的物体有几个？用工具数一数。"]
COLOUR_QUESTION = ["图中的{shape}是什么颜色？", "请问图里的{shape}是什么颜色？"]
TOOLS_SOURCE, THINKING_SOURCE = "synthetic-tools", "synthetic-thinking"


def _call(name: str, **arguments: str) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def _where(obj: dict) -> str:
    return CORNERS[obj["col"], obj["row"]]


def tool_sample(split: str, seed: int, index: int, image_size: int = 96, follow_up: float = 0.5) -> Sample:
    """Sample `index` of `synthetic-tools`; its kind is `Sample.source`'s suffix."""
    return tool_case(split, seed, index, image_size, follow_up)[0]


def tool_case(split: str, seed: int, index: int, image_size: int = 96,
              follow_up: float = 0.5) -> tuple[Sample, list[dict]]:
    """Sample `index` of `synthetic-tools` and the objects of its scene (for tests and scoring)."""
    if split not in SPLITS:
        raise ValueError(f"{TOOLS_SOURCE} split {split!r}; choose one of {', '.join(SPLITS)}")
    rng = random.Random(f"smvl-synthetic-tools/{split}/{seed}/{index}")
    image, objects = scene(rng, image_size)
    kind = rng.choices(list(KIND_SHARES), weights=list(KIND_SHARES.values()))[0]
    absent = [s for s in SHAPES if s not in {o["shape"] for o in objects}]
    if kind == "decline" and not absent:
        kind = "direct"
    obj = rng.choice(objects)
    call, result, final, reply = None, None, None, None
    if kind == "record":
        question = rng.choice(RECORD).format(shape=obj["shape"])
        call = _call("record_object", colour=obj["colour"], shape=obj["shape"], position=_where(obj))
        number = rng.randint(1, 99)
        result, final = f'{{"编号": {number}}}', f"已记录{_where(obj)}的{obj['colour']}{obj['shape']}，编号{number}。"
    elif kind == "count":
        colour = rng.choice([o["colour"] for o in objects] + [rng.choice(list(COLOURS))])
        found = sum(o["colour"] == colour for o in objects)
        question = rng.choice(COUNT).format(colour=colour)
        call = _call("count_colour", colour=colour)
        result = f'{{"个数": {found}}}'
        final = f"图中有{COUNTS[found - 1]}{colour}的物体。" if found else f"图中没有{colour}的物体。"
    elif kind == "decline":
        shape = rng.choice(absent)
        question = rng.choice(COLOUR_QUESTION).format(shape=shape)
        call = _call("decline", message=f"图中没有{shape}。")
        result, final = '{"已发送": true}', f"抱歉，图中没有{shape}。"
    else:
        question = rng.choice(COLOUR_QUESTION).format(shape=obj["shape"])
        reply = obj["colour"]
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    if reply is not None:
        messages.append({"role": "assistant", "content": reply})
    else:
        messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        if rng.random() < follow_up:
            messages += [{"role": "tool", "name": call["function"]["name"], "content": result},
                         {"role": "assistant", "content": final}]
    return Sample(messages, [image], id=f"{TOOLS_SOURCE}-{split}-{index:06d}", source=f"{TOOLS_SOURCE}:{kind}",
                  tools=TOOLS), objects


def thinking_sample(split: str, seed: int, index: int, image_size: int = 96) -> Sample:
    """Sample `index` of `synthetic-thinking`: one synthetic question, a trace over the scene, the answer."""
    if split not in SPLITS:
        raise ValueError(f"{THINKING_SOURCE} split {split!r}; choose one of {', '.join(SPLITS)}")
    rng = random.Random(f"smvl-synthetic-thinking/{split}/{seed}/{index}")
    image, objects = scene(rng, image_size)
    kind = _plan(rng, multi=False)[0]
    obj = rng.choice(objects)
    reply = answer(kind, obj, objects)
    listed = f"图中有{COUNTS[len(objects) - 1]}物体：{scene_answer(objects)}。"
    found = "" if kind == "count" else f"{NAMES[0].format(**obj)}在{_where(obj)}。"
    trace = f"{listed}{found}所以答案是{reply}。"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": _ask(rng, kind, obj, False)}]},
                {"role": "assistant", "content": reply, "reasoning_content": trace}]
    return Sample(messages, [image], id=f"{THINKING_SOURCE}-{split}-{index:06d}", source=f"{THINKING_SOURCE}:{kind}")

