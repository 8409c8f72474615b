"""`--resume_from RUN`: go on training a finished (or interrupted) run for more steps, in its own folder.

As with the Trainer's `resume_from_checkpoint` (and LLaMA-Factory's), the last stage continues from its last
complete checkpoint: weights, optimizer, step count and RNG; the learning-rate schedule is computed for the new
length, so a cosine that had reached 0 rises again to where the longer schedule stands. Only the last stage's
`steps` may change, and only upwards: anything else would make the checkpoints another run's. Starting a new run
from a trained model's weights (fresh optimizer and schedule) is `--model.path RUN/final` instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from smvl import config as configlib
from smvl.errors import UserError
from smvl.splice.model import PROVENANCE
from smvl.train import checkpoints
from smvl.train.config import TrainConfig


def resumed_base(overrides: list[str]) -> dict:
    """The run's saved config, in its own folder, as the base the command line overrides ({} without resume_from)."""
    run = configlib.parse_overrides(TrainConfig, overrides).get("resume_from")
    if run is None or str(run).lower() in configlib.NULLS:
        return {}
    saved = Path(run) / "config.yaml"
    if not saved.is_file():
        raise UserError(f"resume_from: {run} holds no run (no config.yaml)")
    return {**(yaml.safe_load(saved.read_text()) or {}), "output_dir": str(run)}


def check_target(cfg: TrainConfig) -> None:
    if cfg.resume_from and Path(cfg.resume_from).resolve() != Path(cfg.output_dir).resolve():
        raise UserError(f"resume_from continues {cfg.resume_from} in its own folder (output_dir is {cfg.output_dir}); "
                        f"to start a new run from its weights use --model.path {cfg.resume_from}/final")


def extension_keys(old: dict, new: dict) -> set[str]:
    """Of the keys that differ between a run's saved (flat) config and the new one, those an extension may change:
    the last stage's step count, upwards."""
    if old.get("stages") or new.get("stages"):
        before, after = old.get("stages") or [], new.get("stages") or []
        if len(before) != len(after) or before[:-1] != after[:-1] or {**before[-1], "steps": 0} != {
                **after[-1], "steps": 0}:
            return set()
        key, (was, asked) = "stages", (before[-1]["steps"], after[-1]["steps"])
    else:
        key, (was, asked) = "steps", (old.get("steps"), new.get("steps"))
    if asked < was:
        raise UserError(f"resume_from extends a run: steps can only grow (the run has {was}, asked {asked})")
    return {key}


def trained_steps(stage_dir: Path) -> int:
    last = checkpoints.last_complete(stage_dir) if stage_dir.is_dir() else None
    return int(last.name.split("-")[1]) if last else 0


def final_steps(stage_dir: Path) -> int:
    """The step count the stage's `final/` was trained to (its provenance), else its last checkpoint's."""
    provenance = stage_dir / "final" / PROVENANCE
    stages = json.loads(provenance.read_text()).get("stages") if provenance.is_file() else None
    return stages[-1]["steps"] if stages else trained_steps(stage_dir)


def needs_more(stage_dir: Path, steps: int) -> bool:
    """An extended last stage whose `final/` is complete but shorter than `steps` trains on; with no checkpoint to
    go on from (deleted to save space) it cannot."""
    if final_steps(stage_dir) >= steps:
        return False
    if trained_steps(stage_dir) == 0:
        raise UserError(f"resume_from: {stage_dir} has no complete checkpoint to continue from")
    return True
