"""Durable checkpoints and folders: everything fsynced before the marker, an unreadable checkpoint skipped for the one
before it, `final/` never missing during its replacement, and a killed splice's leftovers cleaned up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from smvl import folders
from smvl.train import checkpoints
from smvl.train.run import publish


def fake_checkpoint(folder: Path, value: float) -> Path:
    folder.mkdir(parents=True)
    save_file({"w": torch.full((256,), value)}, folder / "model.safetensors")
    torch.save({"state": {}}, folder / "optimizer.pt")
    (folder / "trainer_state.json").write_text('{"global_step": 1}')
    checkpoints.mark_complete(folder)
    return folder


def test_marking_complete_fsyncs_every_file_and_folder_first(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoint-4"
    (folder / "adapter").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "adapter" / "adapter_config.json").write_text("{}")
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real(fd))
    checkpoints.mark_complete(folder)
    marker = synced.index(str(folder / f".{checkpoints.MARKER}.tmp"))
    before = set(synced[:marker])
    assert {str(folder / "model.safetensors"), str(folder / "adapter" / "adapter_config.json"),
            str(folder / "adapter"), str(folder)} <= before, synced
    assert synced[-1] == str(folder)  # the marker's rename, made durable


@pytest.mark.parametrize("damage", ["truncate weights", "empty optimizer", "bad state"])
def test_an_unreadable_newest_checkpoint_falls_back_to_the_one_before(tmp_path, damage):
    old = fake_checkpoint(tmp_path / "checkpoint-4", 1.0)
    new = fake_checkpoint(tmp_path / "checkpoint-8", 2.0)
    if damage == "truncate weights":
        data = (new / "model.safetensors").read_bytes()
        (new / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "empty optimizer":
        (new / "optimizer.pt").write_bytes(b"")
    else:
        (new / "trainer_state.json").write_text('{"global_st')
    warnings = []
    assert checkpoints.resume_point(tmp_path, warnings.append) == old
    assert len(warnings) == 1 and "checkpoint-8 cannot be loaded" in warnings[0]
    assert not new.exists() and (tmp_path / "broken-checkpoint-8").is_dir()
    assert checkpoints.resume_point(tmp_path, warnings.append) == old and len(warnings) == 1


def test_only_the_main_process_sets_a_broken_checkpoint_aside(tmp_path):
    old = fake_checkpoint(tmp_path / "checkpoint-4", 1.0)
    new = fake_checkpoint(tmp_path / "checkpoint-8", 2.0)
    (new / "optimizer.pt").write_bytes(b"")
    assert checkpoints.resume_point(tmp_path, print, main=False) == old and new.is_dir()
    assert checkpoints.resume_point(tmp_path, print, main=True) == old and not new.exists()


def test_final_survives_a_kill_between_its_two_renames(tmp_path, monkeypatch):
    out = tmp_path / "run"
    (out / "final").mkdir(parents=True)
    (out / "final" / "which").write_text("old")
    stage_final = tmp_path / "stage" / "final"
    stage_final.mkdir(parents=True)
    (stage_final / "which").write_text("new")

    real_rename = Path.rename

    def killed_before_the_new_one_is_in(self, target):
        if self.name.startswith(".final.partial"):
            raise KeyboardInterrupt("killed")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", killed_before_the_new_one_is_in)
    with pytest.raises(KeyboardInterrupt):
        publish(stage_final, out)
    monkeypatch.undo()
    folders.restore_aside(out / "final")  # what the next run does first
    assert (out / "final" / "which").read_text() == "old"
    assert (publish(stage_final, out) / "which").read_text() == "new"
    assert sorted(p.name for p in out.iterdir()) == ["final"]


def test_a_killed_splices_partial_folder_is_removed_by_the_next_splice(tiny_sources, tmp_path):
    from smvl.splice.model import splice

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    leftovers = [tmp_path / f".m.partial-{host}-{dead.pid}", tmp_path / f".m.partial-{dead.pid}"]
    alive = [tmp_path / f".m.partial-{host}-{os.getppid()}", tmp_path / f".m.partial-elsewhere-{dead.pid}"]
    for folder in leftovers + alive:
        folder.mkdir()
    splice(str(tiny_sources / "vision"), str(tiny_sources / "text"), tmp_path / "m")
    assert (tmp_path / "m" / "config.json").is_file()
    assert not any(p.exists() for p in leftovers) and all(p.exists() for p in alive)
