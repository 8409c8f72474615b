"""Two CPU processes (torchrun, gloo) train to the same weights as one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from conftest import TORCHRUN

BASE = ["--recipe", "full", "--lr", "1e-3", "--steps", "3", "--data.synthetic_train", "48",
        "--data.synthetic_test", "8", "--data.group_by_length", "false", "--final_eval", "false",
        "--eval_every", "3", "--save_every", "3"]
COMMON = [*BASE, "--grad_accum", "1"]


def test_two_processes_match_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "smvl", "train", *COMMON, "--batch_size", "4",
                          "--output_dir", str(tmp_path / "one")], env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([*TORCHRUN, "--nproc_per_node", "2", "--master_port", "29517", "-m", "smvl", "train",
                          *COMMON, "--batch_size", "2", "--output_dir", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-3000:]
    for line in ("stage stage-1-full: recipe full", "trainable params:", "no samples skipped", "final model:"):
        assert two.stdout.count(line) == 1, (line, two.stdout)  # rank 0 speaks for the run
    a = load_file(tmp_path / "one" / "final" / "model.safetensors")
    b = load_file(tmp_path / "two" / "final" / "model.safetensors")
    start = load_file(tmp_path / "one" / "spliced" / "model.safetensors")
    key = "model.connector.modality_projection.proj.weight"
    assert not torch.equal(a[key], start[key])
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-5, rtol=1e-4), (k, (a[k] - b[k]).abs().max())


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    """Packed rows hold different token counts; the loss is normalised over the whole accumulated batch's tokens,
    so 2 x 2 samples accumulated is the same update as 4 samples at once."""
    from smvl.train.run import load_config, train

    runs = {"one": ["--batch_size", "4", "--grad_accum", "1"], "accum": ["--batch_size", "2", "--grad_accum", "2"]}
    for name, args in runs.items():
        train(load_config(None, [*BASE, *args, "--output_dir", str(tmp_path / name)]))
    a = load_file(tmp_path / "one" / "final" / "model.safetensors")
    b = load_file(tmp_path / "accum" / "final" / "model.safetensors")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-5, rtol=1e-4), (k, (a[k] - b[k]).abs().max())


def test_training_tears_the_process_group_down_so_no_rank_exits_with_it_alive(tmp_path, monkeypatch):
    """A rank leaving with the gloo group alive could abort in its C++ threads at exit (seen as a flaky torchrun
    failure after the model was saved); train() must destroy the group on every rank before returning."""
    import torch.distributed as dist
    from accelerate.state import AcceleratorState

    from smvl.train.run import load_config, train

    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29531", "RANK": "0", "LOCAL_RANK": "0",
                       "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # accelerate sets it for a CPU group; restored afterwards
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        train(load_config(None, [*COMMON, "--batch_size", "4", "--output_dir", str(tmp_path / "run")]))
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        AcceleratorState._reset_state(reset_partial_state=True)  # later in-process runs start single-process
