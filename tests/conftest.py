"""Shared fixtures: tiny models built in code, and fake checkpoints from the real configs in ../shared/assets."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The tiny preset's cache goes to a scratch folder (subprocesses inherit it), never the user's ~/.cache; removed
# when the session ends, so runs do not pile them up in /tmp.
if "SMVL_CACHE" not in os.environ:
    os.environ["SMVL_CACHE"] = tempfile.mkdtemp(prefix="smvl-cache-")
    atexit.register(shutil.rmtree, os.environ["SMVL_CACHE"], ignore_errors=True)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(2)

ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets"
# torchrun as this interpreter's module: a venv used without activation has no `torchrun` on PATH.
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
pytest_plugins = ["ci_skips"]


@pytest.fixture(scope="session")
def tiny_sources(tmp_path_factory):
    from smvl.splice.presets import tiny_sources as build

    return build(tmp_path_factory.mktemp("tiny") / "sources")


@pytest.fixture(scope="session")
def tiny_model(tiny_sources, tmp_path_factory) -> Path:
    """A spliced tiny model folder; tests must not modify it (copy it first)."""
    from smvl.splice.model import splice

    return splice(str(tiny_sources / "vision"), str(tiny_sources / "text"), tmp_path_factory.mktemp("spliced") / "m")


@pytest.fixture(scope="session")
def assets() -> Path:
    if not (ASSETS / "qwen3-0.6b" / "config.json").is_file():
        pytest.skip(f"real model assets not found at {ASSETS} (they live beside the checkout, in shared/assets)")
    return ASSETS


def build_real_fake(assets: Path, root: Path, layers: int) -> Path:
    """Random-weight bf16 checkpoints with the real configs, key layout and tokenizer at full width; depth cut to
    `layers`. `root/vision` and `root/text` are splice sources."""
    from smvl.bench.random_sources import build_random_sources

    return build_random_sources(assets, root, layers)


@pytest.fixture(scope="session")
def real_fake_sources(assets, tmp_path_factory) -> Path:
    """Real widths, key layout and tokenizer; 1 layer each."""
    return build_real_fake(assets, tmp_path_factory.mktemp("realfake"), layers=1)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """A short run of the demo recipe (full training of the tiny preset on the synthetic set)."""
    from smvl.train.run import load_config, train

    out = tmp_path_factory.mktemp("demo") / "run"
    cfg = load_config(None, ["--steps", "300", "--log_every", "10", "--eval_every", "100", "--save_every", "100",
                             "--data.synthetic_train", "2400", "--data.synthetic_test", "24",
                             "--sample_questions", "2", "--output_dir", str(out)])
    train(cfg)
    return out
