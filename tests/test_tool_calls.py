"""Qwen3's `<tool_call>` blocks -> OpenAI tool calls: parallel calls, text around them, malformed blocks kept as
content, and streamed pieces cut anywhere giving exactly what the whole text gives."""

from __future__ import annotations

import json
import random

import pytest

from smvl.infer.tool_calls import ToolCall, ToolCallStreamer, parse_tool_calls


def block(name: str, arguments) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)}\n</tool_call>'


def test_one_call_alone_has_no_content():
    parsed = parse_tool_calls(block("count", {"colour": "红色"}))
    assert parsed.content is None
    assert parsed.calls == [ToolCall("count", '{"colour": "红色"}')]
    call = parsed.calls[0].openai()
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert json.loads(call["function"]["arguments"]) == {"colour": "红色"}


def test_parallel_calls_and_the_text_around_them():
    text = "我来数一下。\n" + block("count", {"colour": "红色"}) + "\n" + block("where", {"shape": "圆形", "n": 2}) + "\n"
    parsed = parse_tool_calls(text)
    assert parsed.content == "我来数一下。"
    assert [c.name for c in parsed.calls] == ["count", "where"]
    assert json.loads(parsed.calls[1].arguments) == {"shape": "圆形", "n": 2}
    after = parse_tool_calls(block("count", {}) + "\n\n然后回答。")
    assert after.content == "然后回答。" and after.calls == [ToolCall("count", "{}")]


MALFORMED = [
    '<tool_call>\n{"name": "count", "arguments": {"colour": }\n</tool_call>',  # bad JSON
    '<tool_call>\n{"arguments": {"colour": "红色"}}\n</tool_call>',  # no name
    '<tool_call>\n{"name": "", "arguments": {}}\n</tool_call>',  # empty name
    '<tool_call>\n{"name": "count", "arguments": "红色"}\n</tool_call>',  # arguments not an object
    '<tool_call>\n{"name": "count"}\n</tool_call>',  # no arguments
    '<tool_call>\n["count", {}]\n</tool_call>',  # not an object
    '<tool_call>\n{"name": "count", "arguments": {"colour": "红色"}}',  # never closed (cut by max_tokens)
]


@pytest.mark.parametrize("text", MALFORMED)
def test_a_malformed_block_is_content_as_written(text):
    parsed = parse_tool_calls("先看看。\n" + text)
    assert parsed.calls == [] and parsed.content == ("先看看。\n" + text).strip()


def test_a_malformed_block_beside_a_good_one_stays_content():
    good = block("count", {"colour": "蓝色"})
    parsed = parse_tool_calls(MALFORMED[0] + "\n" + good)
    assert parsed.calls == [ToolCall("count", '{"colour": "蓝色"}')] and parsed.content == MALFORMED[0]


def test_text_without_calls_is_untouched():
    for text in ["答案是红色。", "a < b and <tool_ is not a tag", "<tool_call", ""]:
        parsed = parse_tool_calls(text)
        assert parsed.calls == [] and parsed.content == text.strip()


CASES = [
    "我来数一下。\n" + block("count", {"colour": "红色"}) + "\n" + block("where", {"shape": "圆形"}),
    block("count", {"text": "</tool_ca"}) + "\n尾巴",
    "  <tool_call>\n{\"name\": \"x\", \"arguments\": {}}\n</tool_call>  \n  ",
    MALFORMED[0] + "\n" + block("count", {}) + " 然后 " + MALFORMED[-1],
    "plain text with a < sign and <tool but no call",
    "",
]


@pytest.mark.parametrize("text", CASES)
def test_pieces_cut_anywhere_give_the_whole_texts_calls(text):
    whole = parse_tool_calls(text)
    rng = random.Random(0)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(0, 12)))) if text else []
        streamer, content, calls = ToolCallStreamer(), "", []
        for piece in [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]:
            for kind, value in streamer.feed(piece):
                if kind == "call":
                    calls.append(value)
                else:
                    content += value
        for kind, value in streamer.flush():
            assert kind == "content"
            content += value
        assert calls == whole.calls
        assert (content.strip() or (None if calls else "")) == whole.content


def test_a_partial_tag_is_held_until_it_is_decided():
    streamer = ToolCallStreamer()
    assert streamer.feed("好的 <tool") == [("content", "好的")]
    assert streamer.feed("_c") == []
    said = streamer.feed('all>\n{"name": "f", "arguments": {}}\n</tool_call>')
    assert said == [("call", ToolCall("f", "{}"))]
    assert streamer.feed(" <tooth") == [("content", "<tooth")]  # the space after a call is not content
