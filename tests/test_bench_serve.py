"""`smvl bench serve` starts the server, and every request generates exactly --max-tokens (ignore_eos)."""

from __future__ import annotations

import json
import shutil

import pytest

from smvl.cli import main


def stops_at_once(tiny_model, folder):
    """A copy of the tiny model whose end tokens are its first answers to the benchmark's requests: without
    ignore_eos, every request would end after one token."""
    from smvl.bench.serve import image_url, messages
    from smvl.infer.generate import inputs_for, load, sampling
    from smvl.serve.requests import parse_chat_request
    from smvl.serve.settings import Settings

    shutil.copytree(tiny_model, folder)
    model, processor = load(folder, "fp32", "cpu")
    firsts = set()
    for i in range(3):
        req = parse_chat_request({"messages": messages(image_url(i))}, Settings(), "m")
        inputs = inputs_for(model, processor, [req.messages], [req.images])
        firsts.add(int(model.generate(**inputs, **sampling(max_new_tokens=1))[0, -1]))
    config = json.loads((folder / "generation_config.json").read_text())
    ends = sorted(firsts | set(config["eos_token_id"]))
    (folder / "generation_config.json").write_text(json.dumps({**config, "eos_token_id": ends}))
    return folder


def test_bench_serve_reports_every_level_with_forced_lengths(tiny_model, tmp_path, capsys):
    model = stops_at_once(tiny_model, tmp_path / "m")
    args = ["bench", "serve", str(model), "--dtype", "fp32", "--device", "cpu", "--concurrency", "1,3",
            "--requests", "3", "--max-tokens", "5", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "m" and result["max_tokens"] == 5
    levels = result["levels"]
    assert [(r["concurrency"], r["requests"], r["errors"]) for r in levels] == [(1, 3, 0), (3, 3, 0)]
    assert all(r["completion_tokens"] == 3 * 5 for r in levels)
    for r in levels:
        assert 0 < r["ttft_p50"] <= r["ttft_p95"] <= r["latency_p95"] and r["tokens_per_s"] > 0
    assert levels[0]["speedup"] == 1.0


@pytest.mark.parametrize("bad", [["--concurrency", "1,x"], ["--concurrency", "0"], ["--requests", "0"]])
def test_bench_serve_refuses_bad_numbers(tiny_model, bad, capsys):
    assert main(["bench", "serve", str(tiny_model), *bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("smvl bench: error: --")
