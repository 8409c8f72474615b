"""Complete checkpoints only: a marker file written after the Trainer finished saving, and the run's identity.

transformers writes `checkpoint-N/` in place, so a process killed mid-save leaves a folder that looks like a
checkpoint. We mark a checkpoint complete in `on_save` (called after every file is written) and resume only from
marked ones; unmarked folders newer than the last complete one are removed before training continues.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from transformers import TrainerCallback

MARKER = "smvl_complete"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def mark_complete(folder: Path) -> None:
    tmp = folder / f".{MARKER}.tmp"
    tmp.write_text("ok\n")
    with open(tmp) as f:
        os.fsync(f.fileno())
    tmp.rename(folder / MARKER)


def is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def checkpoints(stage_dir: Path) -> list[tuple[int, Path]]:
    found = [(int(m.group(1)), p) for p in stage_dir.glob("checkpoint-*") if (m := CHECKPOINT.match(p.name))]
    return sorted(found)


def last_complete(stage_dir: Path) -> Path | None:
    """The newest complete checkpoint; incomplete ones newer than it are deleted (they would be overwritten)."""
    found = checkpoints(stage_dir)
    best = next((p for _, p in reversed(found) if is_complete(p)), None)
    best_step = int(CHECKPOINT.match(best.name).group(1)) if best else -1
    for step, path in found:
        if step > best_step and not is_complete(path):
            shutil.rmtree(path, ignore_errors=True)
    return best


class MarkCompleteCallback(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            mark_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}")
