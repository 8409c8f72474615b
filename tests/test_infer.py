"""`smvl infer`: batched answers, resumable, bad lines skipped with a reason."""

from __future__ import annotations

import json

from PIL import Image

from smvl.cli import main


def test_batch_inference_is_resumable(tiny_model, tmp_path, capsys):
    Image.new("RGB", (80, 60), (0, 200, 0)).save(tmp_path / "g.png")
    lines = [{"id": f"q{i}", "question": "这是什么颜色？", "image": "g.png"} for i in range(5)]
    lines += [{"id": "text", "messages": [{"role": "user", "content": "你好"}]}, {"id": "bad", "image": "g.png"}]
    source = tmp_path / "q.jsonl"
    source.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n{not json\n")
    out = tmp_path / "a.jsonl"
    out.write_text(json.dumps({"id": "q0", "answer": "已答"}, ensure_ascii=False) + "\n{\"id\": \"q1\", \"ans")
    args = ["infer", str(tiny_model), "--input", str(source), "--output", str(out), "--batch-size", "4",
            "--max-new-tokens", "3"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "answered 5 question(s)" in printed and "missing fields" in printed and "invalid JSON" in printed
    rows = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    assert sorted(r["id"] for r in rows) == ["q1", "q2", "q3", "q4", "text"]
    assert main(args) == 0
    assert "answered 0 question(s)" in capsys.readouterr().out


def test_bench_generate_prints_batch_1_and_n(tiny_model, capsys):
    assert main(["bench", "generate", str(tiny_model), "--batch", "3", "--new-tokens", "4"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[1].split()[:2] == ["batch", "seconds"]
    one, three = rows[2].split(), rows[3].split()
    assert one[0] == "1" and one[-1] == "ms" and three[0] == "3" and float(three[2]) > 0
