"""A run killed with SIGKILL and started again ends where an uninterrupted run of the same seed ends."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from smvl.train import checkpoints

ARGS = ["--recipe", "full", "--lr", "2e-3", "--steps", "24", "--save_every", "4", "--eval_every", "4",
        "--data.synthetic_train", "160", "--data.synthetic_test", "16", "--batch_size", "8", "--grad_accum", "1",
        "--final_eval", "false"]


def command(out):
    return [sys.executable, "-m", "smvl", "train", *ARGS, "--output_dir", str(out)]


def env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def weights(run):
    return load_file(run / "final" / "model.safetensors")


def test_killed_run_resumes_from_last_complete_checkpoint(tmp_path):
    straight = tmp_path / "straight"
    subprocess.run(command(straight), check=True, env=env(), capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(killed), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stage = killed / "stage-1-full"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        done = [p for _, p in checkpoints.checkpoints(stage) if checkpoints.is_complete(p)] if stage.exists() else []
        if len(done) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "final").exists()

    resumed = subprocess.run(command(killed), env=env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout
    a, b = weights(straight), weights(killed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_an_unreadable_last_checkpoint_resumes_from_the_one_before(tmp_path):
    from smvl.train.run import load_config, train

    args = [*ARGS, "--steps", "8", "--output_dir", str(tmp_path / "run")]
    train(load_config(None, args), log=lambda *a: None)
    stage = tmp_path / "run" / "stage-1-full"
    shutil.rmtree(stage / "final")  # as if killed after the last checkpoint, before the stage's final model
    shutil.rmtree(tmp_path / "run" / "final")
    weights_file = stage / "checkpoint-8" / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:1000])
    lines = []
    train(load_config(None, args), log=lines.append)
    warning = [line for line in lines if "cannot be loaded" in line]
    assert len(warning) == 1 and "checkpoint-8" in warning[0]
    assert any("resuming from" in line and line.endswith("checkpoint-4") for line in lines), lines
    assert checkpoints.is_complete(stage / "checkpoint-8") and (tmp_path / "run" / "final").is_dir()
