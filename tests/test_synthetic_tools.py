"""The built-in tool-calling and thinking sets: calls read from the image, only the image tells decline from answer,
traces that reason over the scene, held-out splits."""

from __future__ import annotations

from collections import Counter

import pytest
from transformers import AutoProcessor

from smvl.cli import main
from smvl.data.batches.collate import IGNORE, Encoder
from smvl.data.sources import open_source
from smvl.data.sources.synthetic import CORNERS, COUNTS
from smvl.data.sources.synthetic_tools import (
    COLOUR_QUESTION,
    TOOL_NAMES,
    TOOLS,
    thinking_sample,
    tool_case,
    tool_sample,
)


def calls(sample):
    return [c["function"] for m in sample.messages for c in m.get("tool_calls") or []]


def test_each_tool_call_is_what_the_scene_asks_for():
    kinds = Counter()
    for i in range(300):
        sample, objects = tool_case("train", 0, i)
        kind = sample.source.split(":")[1]
        kinds[kind] += 1
        question = sample.messages[1]["content"][1]["text"]
        shapes = {o["shape"]: o for o in objects}
        called = calls(sample)
        assert sample.tools == TOOLS and all(c["name"] in TOOL_NAMES for c in called)
        if kind == "record":
            (call,) = called
            obj = shapes[call["arguments"]["shape"]]
            assert call["arguments"] == {"colour": obj["colour"], "shape": obj["shape"],
                                         "position": CORNERS[obj["col"], obj["row"]]}
        elif kind == "count":
            (call,) = called
            colour = call["arguments"]["colour"]
            assert colour in question
            if len(sample.messages) > 3:
                found = sum(o["colour"] == colour for o in objects)
                assert sample.messages[3]["content"] == f'{{"个数": {found}}}'
                assert (COUNTS[found - 1] if found else "没有") in sample.messages[4]["content"]
        elif kind == "decline":
            (call,) = called
            asked = next(s for s in ("圆形", "正方形", "三角形", "菱形") if s in question)
            assert asked not in shapes and call == {"name": "decline", "arguments": {"message": f"图中没有{asked}。"}}
        else:
            asked = next(s for s in shapes if s in question)
            assert not called and sample.messages[-1]["content"] == shapes[asked]["colour"]
    assert min(kinds.values()) > 40, kinds


def test_only_the_image_tells_whether_to_answer_or_decline():
    """Decline and direct ask the same questions: given the text alone, both are likely."""
    by_text = Counter()
    for i in range(600):
        sample = tool_sample("train", 0, i)
        kind = sample.source.split(":")[1]
        if kind in ("decline", "direct"):
            phrasing = next(p for p in COLOUR_QUESTION if p.format(shape="") in
                            sample.messages[1]["content"][1]["text"].replace("圆形", "").replace("正方形", "")
                            .replace("三角形", "").replace("菱形", ""))
            by_text[phrasing, kind] += 1
    for phrasing in COLOUR_QUESTION:
        share = by_text[phrasing, "decline"] / (by_text[phrasing, "decline"] + by_text[phrasing, "direct"])
        assert 0.3 < share < 0.7, by_text


def test_splits_are_disjoint_and_deterministic():
    a, b = tool_sample("train", 0, 5), tool_sample("train", 0, 5)
    assert a.messages == b.messages and a.images[0].tobytes() == b.images[0].tobytes()
    assert tool_sample("test", 0, 5).images[0].tobytes() != a.images[0].tobytes()
    assert thinking_sample("test", 0, 5).images[0].tobytes() != thinking_sample("train", 0, 5).images[0].tobytes()
    with pytest.raises(ValueError):
        tool_sample("dev", 0, 0)


def test_a_thinking_trace_lists_the_scene_before_the_answer():
    from smvl.data.sources.synthetic import scene_answer
    from smvl.data.sources.synthetic_tools import random, scene

    for i in range(50):
        sample = thinking_sample("train", 0, i)
        answer = sample.messages[1]
        rng = random.Random(f"smvl-synthetic-thinking/train/0/{i}")
        _, objects = scene(rng)
        assert answer["reasoning_content"].startswith(f"图中有{COUNTS[len(objects) - 1]}物体：{scene_answer(objects)}。")
        assert answer["reasoning_content"].endswith(f"所以答案是{answer['content']}。")


@pytest.fixture(scope="module")
def processor(tiny_model):
    return AutoProcessor.from_pretrained(tiny_model)


def test_both_sets_encode_with_the_call_and_the_trace_labelled(processor):
    encoder = Encoder(processor)
    samples = list(open_source("synthetic-tools", split="test", max_samples=40))
    assert len(samples) == 40
    labelled = [processor.tokenizer.decode([t for t, lab in zip(e.input_ids, e.labels) if lab != IGNORE])
                for e in map(encoder, samples)]
    assert sum('<tool_call>\n{"name": "record_object", "arguments": {"colour": ' in t for t in labelled) > 5
    assert not any("# Tools" in t or "<tool_response>" in t for t in labelled)
    traced = encoder(next(iter(open_source("synthetic-thinking", max_samples=1))))
    assert traced.thinking and "<think>\n图中有" in processor.tokenizer.decode(
        [t for t, lab in zip(traced.input_ids, traced.labels) if lab != IGNORE])


def test_data_inspect_reads_the_built_in_tool_set_with_the_tiny_preset(capsys):
    assert main(["data", "inspect", "synthetic-tools", "--limit", "20"]) == 0
    out = capsys.readouterr().out
    assert "tool use and thinking: 20 of 20 samples offer tools" in out and "tiny" in out
