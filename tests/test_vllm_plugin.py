"""The vLLM plugin: declared where vLLM looks for it, harmless without vLLM, and (in a separate venv that has
vLLM, when one exists) registered against vLLM's real classes. vLLM is never installed into the main environment."""

from __future__ import annotations

import ast
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = Path(os.environ.get("SMVL_VLLM_PYTHON", Path.home() / ".cache" / "smvl-vllm-venv" / "bin" / "python"))


def test_pyproject_declares_register_as_a_vllm_general_plugin():
    import smvl.vllm_plugin

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    target = project["entry-points"]["vllm.general_plugins"]["smvl"]
    module, _, attr = target.partition(":")
    assert module == "smvl.vllm_plugin" and getattr(smvl.vllm_plugin, attr) is smvl.vllm_plugin.register


def test_register_without_vllm_logs_why_and_registers_nothing(monkeypatch, caplog):
    from smvl.vllm_plugin import register

    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now raises ImportError, installed or not
    with caplog.at_level(logging.INFO, logger="smvl.vllm_plugin"):
        assert register() is False
    assert "vllm is not importable" in caplog.text and "nothing registered" in caplog.text


def test_registered_class_string_names_a_class_in_the_plugin_package():
    """vLLM imports the `module:Class` string only when it builds a model; a typo would surface only there."""
    from smvl.vllm_plugin import MODEL_CLASS

    module, _, name = MODEL_CLASS.partition(":")
    path = ROOT / "src" / Path(*module.split(".")).with_suffix(".py")
    classes = {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)}
    assert name in classes


@pytest.mark.parametrize("where", ["main env", "vLLM venv"])
def test_importing_smvl_and_the_plugin_does_not_import_vllm(where):
    """Meaningful where vLLM is importable (the venv); in the main env a vLLM import would fail outright."""
    python = sys.executable if where == "main env" else vllm_python()
    code = ("import sys, smvl, smvl.vllm_plugin; "
            "assert not [m for m in sys.modules if m == 'vllm' or m.startswith('vllm.')]")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([str(python), "-c", code], check=True, env=env)


def vllm_python() -> Path:
    if not VLLM_PYTHON.is_file():
        pytest.skip(f"no vLLM venv at {VLLM_PYTHON} (set SMVL_VLLM_PYTHON; vLLM is never installed in the main env)")
    probe = subprocess.run([str(VLLM_PYTHON), "-c", "import vllm"], capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"{VLLM_PYTHON} cannot import vllm: {probe.stderr.strip().splitlines()[-1:]}")
    return VLLM_PYTHON


def test_vllm_builds_our_class_with_qwen3_text_and_matches_transformers_up_to_the_decoder(tiny_model):
    """Slow (about a minute, most of it importing vLLM); runs only where a vLLM venv exists. See the script's
    docstring for what a CPU machine can and cannot run."""
    python = vllm_python()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "VLLM_TARGET_DEVICE": "cpu"}
    run = subprocess.run([str(python), str(ROOT / "tests" / "vllm_plugin_check.py"), str(tiny_model)],
                         capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["resolved_class"].endswith("smvl.vllm_plugin.model.SmolVLMAnyTextForConditionalGeneration")
    assert found["text_backbone"] == "Qwen3ForCausalLM"
    assert found["llama_text_gets_vllms_own_class"] == "SmolVLMForConditionalGeneration"
    assert {"prompt_ids_match_transformers", "input_embeddings_match_transformers",
            "logits_head_matches_transformers", "q_norm_loaded", "qkv_loaded", "copyable"} <= set(found)
