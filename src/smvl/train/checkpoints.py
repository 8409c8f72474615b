"""Complete checkpoints only: a marker file written after the Trainer finished saving, and the run's identity.

transformers writes `checkpoint-N/` in place, so a process killed mid-save leaves a folder that looks like a
checkpoint. We mark a checkpoint complete in `on_save` (called after every file is written), once its files and
folders are on disk (fsync: after a power cut unsynced files can come back empty under a marker), and resume only
from marked ones; unmarked folders newer than the last complete one are removed before training continues. A
marked checkpoint whose files still cannot be read (a disk fault, a copy cut short) is moved aside and the one
before it used, with a warning.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from pathlib import Path

from transformers import TrainerCallback

from smvl import folders

MARKER = "smvl_complete"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def mark_complete(folder: Path) -> None:
    folders.fsync_tree(folder)
    tmp = folder / f".{MARKER}.tmp"
    tmp.write_text("ok\n")
    with open(tmp) as f:
        os.fsync(f.fileno())
    tmp.rename(folder / MARKER)
    folders.fsync_path(folder)


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


def unreadable(folder: Path) -> str | None:
    """Why the Trainer could not load this checkpoint, from cheap checks of every file's framing (JSON parses,
    safetensors headers match their sizes, torch's zip archives have their index), or None."""
    from safetensors import safe_open

    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        try:
            if path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".safetensors":
                with safe_open(path, "pt") as f:
                    f.keys()
            elif path.suffix in (".pt", ".pth", ".bin"):
                with zipfile.ZipFile(path) as z:
                    z.namelist()
        except Exception as exc:  # noqa: BLE001 - any failure to read means the Trainer would fail too
            return f"{path.relative_to(folder)}: {type(exc).__name__}: {str(exc)[:120]}"
    return None


def resume_point(stage_dir: Path, log, main: bool = True) -> Path | None:
    """The newest complete checkpoint that can be read. One that cannot is skipped with a one-line warning and, by
    the main process only (every rank decides the same from the same files), renamed `broken-checkpoint-N`: kept
    for a look, out of the Trainer's way (it would otherwise save into a folder already marked complete)."""
    last_complete(stage_dir)  # for its clean-up of unmarked folders past the newest marked one
    for _, path in reversed(checkpoints(stage_dir)):
        if not is_complete(path):
            continue
        reason = unreadable(path)
        if reason is None:
            if is_complete(path):
                return path
            continue  # set aside by the main process meanwhile
        if main:
            broken = path.parent / f"broken-{path.name}"
            shutil.rmtree(broken, ignore_errors=True)
            path.rename(broken)
        log(f"  warning: {path.name} cannot be loaded ({reason}); set aside as broken-{path.name}, trying the "
            "checkpoint before it")
    return None


class MarkCompleteCallback(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            mark_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}")
