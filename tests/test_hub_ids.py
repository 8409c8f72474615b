"""Every command that names a model takes a hub id as `splice` does: fetched to a local folder (here the fetch is
replaced by a function that returns the tiny model, so no test downloads)."""

from __future__ import annotations

import json

import pytest

from smvl.cli import main


@pytest.fixture
def hub(tiny_model, monkeypatch):
    import huggingface_hub

    fetched = []

    def snapshot_download(repo_id, allow_patterns=None, **kwargs):
        fetched.append(repo_id)
        if repo_id != "owner/tiny":
            raise OSError(f"404 {repo_id}\nmore lines\nof detail")
        return str(tiny_model)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return fetched


def test_chat_and_infer_take_a_hub_id(hub, tmp_path, capsys):
    assert main(["chat", "owner/tiny", "--max-new-tokens", "2", "--device", "cpu", "你好"]) == 0
    source = tmp_path / "q.jsonl"
    source.write_text(json.dumps({"id": "a", "question": "你好"}, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "a.jsonl"
    assert main(["infer", "owner/tiny", "--input", str(source), "--output", str(out), "--max-new-tokens", "2",
                 "--device", "cpu"]) == 0
    assert [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()] == ["a"]
    assert hub == ["owner/tiny", "owner/tiny"]


def test_check_and_eval_take_a_hub_id(hub, tmp_path, capsys):
    assert main(["check", "owner/tiny"]) == 0
    assert "[PASS]" in capsys.readouterr().out
    assert main(["eval", "owner/tiny", "--data", "synthetic", "--limit", "2", "--no-retention",
                 "--out", str(tmp_path / "eval")]) == 0
    assert (tmp_path / "eval" / "results.json").is_file()
    assert hub == ["owner/tiny", "owner/tiny"]


def test_serve_takes_a_hub_id(hub, monkeypatch):
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.append(app))
    assert main(["serve", "owner/tiny", "--device", "cpu"]) == 0
    assert served and served[0].state.worker.settings.model_name == "tiny" and hub == ["owner/tiny"]


def test_an_unreachable_or_unknown_model_is_one_line(hub, capsys):
    assert main(["chat", "runs/final", "你好"]) == 2
    err = capsys.readouterr().err
    assert "runs/final is not a local folder and could not be fetched from the Hugging Face hub: 404 runs/final" \
        in err and err.count("\n") == 1, err


def test_training_from_a_hub_model(hub, tiny_model, tmp_path):
    """model.path (a new run from trained weights) takes a hub id too."""
    from smvl.train.run import load_config, model_source

    cfg = load_config(None, ["--model.path", "owner/tiny", "--output_dir", str(tmp_path)])
    assert model_source(cfg, tmp_path, print) == tiny_model and hub == ["owner/tiny"]
