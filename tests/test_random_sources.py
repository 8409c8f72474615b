"""`python -m smvl.bench.random_sources` on a bad assets folder: one line naming the file and the reason, exit 2,
and nothing written. The folders here are hand-written stand-ins, so no real assets or model building is needed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from smvl.bench.random_sources import ASSET_DIRS, TEXT_FILES, VISION_FILES


def write_assets(root: Path) -> Path:
    """Files that pass the up-front check (a real run would still need the real widths)."""
    text, vision = root / ASSET_DIRS["text"], root / ASSET_DIRS["vision"]
    text.mkdir(parents=True)
    vision.mkdir(parents=True)
    (text / "config.json").write_text(json.dumps({"model_type": "qwen3"}))
    for name in TEXT_FILES:
        (text / name).write_text("" if name.endswith(".txt") else "{}")
    (vision / "config.json").write_text(json.dumps({"model_type": "smolvlm", "vision_config": {}, "text_config": {}}))
    for name in VISION_FILES:
        (vision / name).write_text("{}")
    return root


def no_assets(root):
    return root / "nowhere", root / "nowhere", "not a folder"


def no_text_folder(root):
    shutil.rmtree(root / ASSET_DIRS["text"])
    return root, root / ASSET_DIRS["text"], "missing"


def missing_tokenizer(root):
    path = root / ASSET_DIRS["text"] / "tokenizer.json"
    path.unlink()
    return root, path, "missing"


def config_is_a_folder(root):
    path = root / ASSET_DIRS["vision"] / "config.json"
    path.unlink()
    path.mkdir()
    return root, path, "not a file"


def broken_vision_json(root):
    path = root / ASSET_DIRS["vision"] / "config.json"
    path.write_text('{"model_type": "smolvlm",')
    return root, path, "not valid JSON"


def not_utf8_json(root):
    path = root / ASSET_DIRS["text"] / "tokenizer_config.json"
    path.write_bytes(b'{"a": "\xff\xfe"}')
    return root, path, "not valid JSON"


def json_list(root):
    path = root / ASSET_DIRS["vision"] / "processor_config.json"
    path.write_text("[]")
    return root, path, "expected a JSON object"


def wrong_family(root):
    path = root / ASSET_DIRS["text"] / "config.json"
    path.write_text(json.dumps({"model_type": "llama"}))
    return root, path, "model_type is 'llama', expected 'qwen3'"


def no_vision_config(root):
    path = root / ASSET_DIRS["vision"] / "config.json"
    path.write_text(json.dumps({"model_type": "smolvlm", "text_config": {}}))
    return root, path, "no 'vision_config' object"


def field_transformers_rejects(root):
    path = root / ASSET_DIRS["text"] / "config.json"
    path.write_text(json.dumps({"model_type": "qwen3", "hidden_act": 5}))
    return root, path, "not a usable config ("


@pytest.mark.parametrize("spoil", [no_assets, no_text_folder, missing_tokenizer, config_is_a_folder,
                                   broken_vision_json, not_utf8_json, json_list, wrong_family, no_vision_config,
                                   field_transformers_rejects])
def test_bad_assets_are_a_one_line_error_naming_the_file_with_exit_2(tmp_path, spoil):
    assets, bad, reason = spoil(write_assets(tmp_path / "assets"))
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "smvl.bench.random_sources", str(assets), str(out), "--layers", "1"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("python -m smvl.bench.random_sources: error: ")
    assert f"{bad}: " in lines[0] and reason in lines[0]
    assert not out.exists()  # checked before anything is built, so no half-written sources are left behind
