"""`smvl chat`: streaming one-shot and interactive sessions, thinking shown dimmed or hidden."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from smvl.cli import main
from smvl.infer.chat import DIM, RESET, Chat, ThinkStyler
from smvl.infer.generate import load


def test_think_styler_handles_tags_split_across_pieces():
    pieces = ["<th", "ink>\nplan", "ning</thi", "nk>\n\n答案"]
    dim = ThinkStyler(hide=False, colour=True)
    assert "".join(dim(p) for p in pieces) == f"{DIM}\nplanning{RESET}\n\n答案"
    hide = ThinkStyler(hide=True, colour=False)
    assert "".join(hide(p) for p in pieces) == "\n\n答案"


def test_trained_demo_answers_in_chinese(demo_run, capsys):
    from smvl.data.sources.synthetic import synthetic_samples

    sample = synthetic_samples("test", 1, seed=7)[0]
    image = demo_run / "q.png"
    sample.images[0].save(image)
    question = sample.messages[0]["content"][1]["text"]
    assert main(["chat", str(demo_run / "final"), "--image", str(image), "--max-new-tokens", "8", question]) == 0
    answer = capsys.readouterr().out.strip()
    assert answer and all("\u4e00" <= ch <= "\u9fff" for ch in answer), answer


def test_interactive_session_keeps_history_and_commands(tiny_model, tmp_path):
    image = tmp_path / "blue.png"
    Image.new("RGB", (64, 64), (30, 60, 220)).save(image)
    model, processor = load(tiny_model)
    out = io.StringIO()
    chat = Chat(model, processor, "你是助手。", thinking=False, hide_thinking=False, options={"max_new_tokens": 3},
                out=out)
    lines = iter([f"/image {image}", "这是什么？", "/think on", "再说一遍", "/image missing.png", "/reset", "/exit"])
    chat.repl(read=lambda prompt: next(lines))
    text = out.getvalue()
    assert "(image attached" in text and "(thinking on)" in text and "cannot use missing.png" in text
    assert "(history cleared)" in text and chat.messages == [{"role": "system", "content": "你是助手。"}]


def test_tool_calls_are_printed_and_answered_with_slash_tool(tiny_model, tmp_path):
    from test_serve_tools import ANSWER, TOOLS, block, choose
    from scripted_model import scripted

    from smvl.infer.commands import load_tools

    path = tmp_path / "tools.json"
    path.write_text(json.dumps(TOOLS, ensure_ascii=False))
    model, processor = load(tiny_model)
    out = io.StringIO()
    chat = Chat(model, processor, None, thinking=False, hide_thinking=False, options={"max_new_tokens": 60},
                out=out, tools=load_tools(str(path)))
    lines = iter(["/tool too early", "图中有几个红色的？[call]", "/tool 3", "/exit"])
    with scripted(model, processor, choose) as script:
        chat.repl(read=lambda prompt: next(lines))
    text = out.getvalue()
    assert "(no tool call is waiting for a result)" in text
    assert 'count({"colour": "红色"})' in text and "answer with /tool RESULT" in text
    call = chat.messages[1]["tool_calls"][0]
    assert chat.messages[1]["content"] == "我来数一下。" and call["function"]["arguments"] == {"colour": "红色"}
    assert chat.messages[2] == {"role": "tool", "tool_call_id": call["id"], "content": "3"}
    assert chat.messages[3] == {"role": "assistant", "content": ANSWER} and text.rstrip().endswith(ANSWER)
    assert "<tools>" in script.prompts[0] and block("count", {"colour": "红色"}) in script.prompts[1]
    assert "<tool_response>\n3\n</tool_response>" in script.prompts[1]


def test_a_bad_tools_file_is_one_line(tmp_path):
    from smvl.errors import UserError
    from smvl.infer.commands import load_tools

    path = tmp_path / "tools.json"
    for content in ["not json", '{"name": "f"}', '[{"type": "function", "function": {}}]']:
        path.write_text(content)
        with pytest.raises(UserError, match="--tools"):
            load_tools(str(path))
