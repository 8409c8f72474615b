"""`smvl eval` on tool calling and thinking mode: per-answer scoring, the blank-image control, the report, and the
retention check on text-only tool and thinking prompts."""

from __future__ import annotations

import json

import pytest

from smvl.cli import main
from smvl.data.sources import open_source
from smvl.eval import tool_use
from smvl.eval.cache import PredictionCache
from smvl.eval.image_use import first_turn
from smvl.eval.tool_use import score_tool_answer

CALL = {"role": "assistant", "content": "", "tool_calls": [
    {"type": "function", "function": {"name": "count_colour", "arguments": {"colour": "红色"}}}]}
DIRECT = {"role": "assistant", "content": "红色"}


def block(name: str, arguments: str) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>'


@pytest.mark.parametrize("text, expected", [
    (block("count_colour", '{"colour": "红色"}'), {"exact": True, "right_tool": True, "valid_json": True}),
    (block("count_colour", '{"colour": "蓝色"}'), {"exact": False, "right_tool": True, "valid_json": True}),
    (block("decline", '{"message": "没有"}'), {"exact": False, "right_tool": False, "valid_json": True}),
    (block("count_colour", '{"colour": 红色}'), {"exact": False, "right_tool": False, "valid_json": False}),
    ("红色", {"exact": False, "right_tool": False, "valid_json": None}),
])
def test_a_call_is_exact_only_with_the_right_tool_and_equal_arguments(text, expected):
    row = score_tool_answer(text, CALL)
    assert {k: row[k] for k in expected} == expected


@pytest.mark.parametrize("text, direct, correct", [("红色", True, True), ("蓝色", True, False),
                                                   (block("count_colour", '{"colour": "红色"}'), False, False)])
def test_a_question_without_a_tool_must_be_answered_directly(text, direct, correct):
    row = score_tool_answer(text, DIRECT)
    assert (row["direct"], row["correct"]) == (direct, correct)


def reference_answer(sample) -> str:
    turn = first_turn(sample)[1]
    calls = turn.get("tool_calls") or []
    return "".join(block(c["function"]["name"], json.dumps(c["function"]["arguments"], ensure_ascii=False))
                   for c in calls) or turn["content"]


def test_scores_follow_the_answers_per_condition(monkeypatch, tmp_path):
    """An oracle that sees the image answers right; with blank images it answers the first question's reference
    to every sample: scores fall as they must."""
    samples = list(open_source("synthetic-tools", split="test", max_samples=40))

    def fake_generate(model, processor, conversations, images, thinking=False, tools=None, **options):
        assert tools and all(t == samples[0].tools for t in tools)  # the tools are rendered
        blank = all(im.getextrema() == ((0, 0),) * 3 for ims in images for im in ims)
        by_question = {id(first_turn(s)[0][-1]): s for s in samples}  # the same message objects
        return [reference_answer(samples[0] if blank else by_question[id(c[-1])]) for c in conversations]

    monkeypatch.setattr(tool_use, "generate_batch", fake_generate)
    result = tool_use.score_tool_use(None, None, samples, PredictionCache(tmp_path / "p.jsonl"), ["m"], 16)
    seen = result["with_images"]
    assert seen["call_accuracy"] == seen["right_tool"] == seen["valid_json"] == 1.0
    assert seen["answered_directly"] == seen["direct_accuracy"] == 1.0
    blank = result["blank_images"]
    assert blank["call_accuracy"] < 0.5 and result["calls_expected"] == sum(
        bool(first_turn(s)[1].get("tool_calls")) for s in samples)
    cached = tool_use.score_tool_use(None, None, samples, PredictionCache(tmp_path / "p.jsonl"), ["m"], 16)
    assert cached["with_images"] == seen  # every answer came back from the cache


def test_eval_reports_tool_calling_thinking_and_retention_of_an_untrained_splice(tiny_model, tmp_path, capsys):
    data = tmp_path / "mixed.jsonl"
    records = []
    for sample in [*open_source("synthetic-tools", split="test", max_samples=4),
                   *open_source("synthetic", split="test", max_samples=3)]:
        path = tmp_path / f"{sample.id}.png"
        sample.images[0].save(path)
        messages = [{**m, "content": [{"type": "image"} if p["type"] == "image" else p for p in m["content"]]
                     if isinstance(m["content"], list) else m["content"]} for m in sample.messages]
        records.append({"id": sample.id, "images": [str(path)], "tools": sample.tools, "messages": messages})
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records))
    out = tmp_path / "eval"
    assert main(["eval", str(tiny_model), "--data", str(data), "--split", "all", "--thinking", "--out", str(out),
                 "--batch-size", "8"]) == 0
    result = json.loads((out / "results.json").read_text())["models"][0]
    assert result["n"] == 3 and result["tool_use"]["n"] == 4 and result["thinking"]["n"] == 3
    assert set(result["tool_use"]["with_images"]) == {"call_accuracy", "right_tool", "answered_directly",
                                                      "direct_accuracy", "valid_json"}
    # Spliced and untrained: the source LLM's exact answers to text-only tool and thinking prompts.
    extra = result["retention"]["tools_and_thinking"]
    assert extra["identical_greedy"] == 1.0 and extra["prompts"] == 6
    assert any(s["tools"] for s in extra["samples"]) and any(s["thinking"] for s in extra["samples"])
    report = (out / "report.md").read_text()
    assert "## Tool calling (with images / blank images)" in report and "## Thinking mode" in report
    assert "identical greedy answers 100% of 6 prompts" in report


def test_retention_asks_the_tool_prompts_with_their_tools_and_the_thinking_ones_in_thinking_mode(monkeypatch):
    from smvl.eval import retention

    asked = []

    def spy(model, processor, conversations, images, thinking=False, tools=None, **options):
        asked.append((model, conversations[0][0]["content"], tools[0], thinking))
        return ["答"]

    monkeypatch.setattr(retention, "generate_batch", spy)
    result = retention.tools_and_thinking("ours", None, "source")
    assert result["identical_greedy"] == 1.0
    expected = [(prompt, tools, thinking) for prompt, tools, thinking in retention.TOOLS_AND_THINKING]
    assert [a[1:] for a in asked if a[0] == "ours"] == expected == [a[1:] for a in asked if a[0] == "source"]


def test_batch_generation_renders_each_conversations_own_tools(tiny_model, monkeypatch):
    from smvl.infer import generate

    model, processor = generate.load(tiny_model, dtype="fp32", device="cpu")
    seen = []
    real = generate.inputs_for

    def spy(*args, **kwargs):
        inputs = real(*args, **kwargs)
        seen.extend(processor.tokenizer.batch_decode(inputs["input_ids"]))
        return inputs

    tools = next(iter(open_source("synthetic-tools", max_samples=1))).tools
    conversations = [[{"role": "user", "content": "你好"}]] * 3
    monkeypatch.setattr(generate, "inputs_for", spy)
    generate.generate_batch(model, processor, conversations, [[]] * 3, tools=[tools, None, tools], batch_size=2,
                            max_new_tokens=1)
    assert ["record_object" in text for text in seen] == [True, False, True]
