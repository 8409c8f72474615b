"""Generation (stream, batch, cancel), `smvl chat` one-shot, `smvl infer` (batched, resumable, bad lines skipped)
and `smvl bench generate`, all on the tiny model."""

from __future__ import annotations

import json
import threading
import time

import pytest
import torch
from PIL import Image

from smvl.cli import main
from smvl.infer.batch import drop_partial_line
from smvl.infer.generate import (
    Generation,
    generate_batch,
    generate_stream,
    inputs_for,
    load,
    split_thinking,
)


@pytest.fixture(scope="module")
def loaded(tiny_model):
    return load(tiny_model, "fp32", "cpu")


def ask(text, image=True):
    return [{"role": "user", "content": ([{"type": "image"}] if image else []) + [{"type": "text", "text": text}]}]


IMAGES = [Image.new("RGB", (80, 60), (0, 200, 0)), Image.new("RGB", (50, 90), (200, 0, 0))]


def test_left_padded_batch_matches_one_by_one_and_the_stream(loaded):
    model, processor = loaded
    conversations = [ask("这是什么颜色？"), ask("你好", image=False), ask("图里有几个物体？请仔细数一数。")]
    images = [[IMAGES[0]], [], [IMAGES[1]]]
    inputs = inputs_for(model, processor, conversations, images)
    assert (inputs["attention_mask"][:, -1] == 1).all()  # left padding: every row ends at the last column
    batched = generate_batch(model, processor, conversations, images, max_new_tokens=6)
    alone = [generate_batch(model, processor, [c], [i], max_new_tokens=6)[0] for c, i in zip(conversations, images)]
    assert batched == alone and all(batched)
    streamed = generate_stream(model, processor, conversations[0], images[0], max_new_tokens=6)
    assert streamed.text() == batched[0]
    assert streamed.completion_tokens <= 6 and streamed.finish_reason in ("stop", "length")
    assert streamed.prompt_tokens == inputs_for(model, processor, [conversations[0]], [images[0]])["input_ids"].shape[1]


def test_generation_can_be_cancelled_and_reports_errors(loaded):
    model, processor = loaded
    long = generate_stream(model, processor, ask("描述一下"), [IMAGES[0]], max_new_tokens=3000, min_new_tokens=3000)
    reader = threading.Thread(target=long.text)
    reader.start()
    while not long.token_ids:
        time.sleep(0.001)
    long.cancel()
    reader.join()
    assert long.finish_reason == "cancelled" and 0 < long.completion_tokens < 3000

    cancelled = threading.Event()
    cancelled.set()
    waiting = generate_stream(model, processor, ask("你好", False), [], cancel=cancelled, max_new_tokens=5)
    assert waiting.text() == "" and waiting.completion_tokens == 0

    inputs = inputs_for(model, processor, [ask("你好", False)], [[]])
    broken = Generation(model, processor, {**inputs, "input_ids": torch.full((1, 3), 10**9)}, max_new_tokens=2)
    with pytest.raises(IndexError):  # raised on the generation thread, re-raised to the reader
        broken.text()


def test_split_thinking():
    assert split_thinking("<think>\n先数一数。\n</think>\n\n两个") == ("先数一数。", "两个")
    assert split_thinking("两个") == ("", "两个")
    assert split_thinking("<think>还没想完") == ("还没想完", "")


def test_chat_one_shot_streams_an_answer(tiny_model, tmp_path, capsys):
    IMAGES[0].save(tmp_path / "g.png")
    args = ["chat", str(tiny_model), "--image", str(tmp_path / "g.png"), "--max-new-tokens", "4", "--device", "cpu",
            "--dtype", "fp32", "--thinking", "--hide-thinking", "--system", "你是助手。", "图中是什么颜色？"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip()
    assert main(["chat", str(tiny_model), "--image", str(tmp_path / "nope.png"), "你好"]) == 2
    assert "cannot use image" in capsys.readouterr().err
    assert main(["chat", str(tmp_path), "你好"]) == 2
    assert "not a model folder" in capsys.readouterr().err


def write_jsonl(path, rows, extra=""):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n" + extra, encoding="utf-8")


def test_batch_inference_is_resumable_and_skips_bad_lines(tiny_model, tmp_path, capsys):
    IMAGES[0].save(tmp_path / "g.png")
    (tmp_path / "sub").mkdir()
    IMAGES[1].save(tmp_path / "sub" / "r.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    good = [{"id": f"q{i}", "question": "这是什么颜色？", "image": "g.png"} for i in range(5)]
    good += [{"id": "text", "messages": [{"role": "user", "content": "你好"}]},
             {"id": "two", "question": "<image>和<image>哪个更亮？", "images": ["g.png", "sub/r.png"]},
             {"id": "parts", "messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text",
                                                                                          "text": "这是什么？"}]}],
              "images": ["sub/r.png"]}]
    bad = [{"id": "noq", "image": "g.png"}, {"id": "gone", "question": "?", "image": "missing.png"},
           {"id": "corrupt", "question": "?", "image": "broken.png"}, {"id": "q2", "question": "重复的编号"},
           {"id": "count", "question": "<image>", "images": []}]
    source = tmp_path / "q.jsonl"
    write_jsonl(source, good + bad, extra="{not json\n\n")
    out = tmp_path / "answers" / "a.jsonl"
    out.parent.mkdir()
    # A previous run answered q0, then was killed halfway through writing q1's line.
    out.write_text(json.dumps({"id": "q0", "answer": "已答"}, ensure_ascii=False) + '\n{"id": "q1", "ans')
    args = ["infer", str(tiny_model), "--input", str(source), "--output", str(out), "--batch-size", "3",
            "--max-new-tokens", "3", "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "answered 7 question(s)" in printed and "1 already answered" in printed and "6 skipped" in printed
    for reason in ("missing question", "missing image file", "corrupt image", "duplicate id", "image count mismatch",
                   "invalid JSON"):
        assert reason in printed, reason
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == {"id": "q0", "answer": "已答"}
    assert sorted(r["id"] for r in rows[1:]) == ["parts", "q1", "q2", "q3", "q4", "text", "two"]
    assert all(isinstance(r["answer"], str) for r in rows)
    assert main(args) == 0
    assert "answered 0 question(s)" in capsys.readouterr().out
    assert len(out.read_text(encoding="utf-8").splitlines()) == 8


def test_partial_last_line_is_cut(tmp_path):
    out = tmp_path / "a.jsonl"
    out.write_bytes(b'{"id": 1}\n' + b"x" * 200_000)
    drop_partial_line(out)
    assert out.read_bytes() == b'{"id": 1}\n'
    out.write_bytes(b"no newline at all")
    drop_partial_line(out)
    assert out.read_bytes() == b""


def test_bench_generate_prints_batch_1_and_n(tiny_model, capsys):
    assert main(["bench", "generate", str(tiny_model), "--batch", "3", "--new-tokens", "4", "--repeats", "1",
                 "--device", "cpu"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[1].split()[:3] == ["batch", "prompt", "first"]
    one, three = rows[2].split(), rows[3].split()
    assert one[0] == "1" and one[3] == "ms" and three[0] == "3" and float(three[5]) > 0


def test_ctrl_c_stops_an_answer_and_keeps_the_session(loaded):
    import io

    from smvl.infer.chat import Chat

    class Interrupting(io.StringIO):
        def __init__(self):
            super().__init__()
            self.pieces = 0

        def write(self, text):
            self.pieces += 1
            if self.pieces == 2:
                raise KeyboardInterrupt
            return super().write(text)

    out = Interrupting()
    chat = Chat(*loaded, None, thinking=False, hide_thinking=False, options={"max_new_tokens": 2000}, out=out)
    chat.pending_images = [IMAGES[0]]
    chat.ask("描述一下")
    assert "(stopped)" in out.getvalue()
    assert [m["role"] for m in chat.messages] == ["user", "assistant"]
    lines = iter(["再说一遍", "/exit"])
    chat.options = {"max_new_tokens": 2}
    chat.repl(read=lambda prompt: next(lines))
    assert [m["role"] for m in chat.messages] == ["user", "assistant"] * 2
