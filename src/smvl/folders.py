"""Folders written so that a crash at any moment leaves the old one or the new one, never neither, and leaves
nothing half-written that looks whole.

A rename is atomic, but only durable once the folder holding it is fsynced, and files renamed into place are only
on disk once fsynced themselves: after a power cut, unsynced files can come back empty under their final names.
Replacing a folder cannot be one rename (a rename onto a non-empty folder fails), so the old one is renamed aside
first, and `restore_aside` brings it back when a kill fell between the two renames.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Every file and folder under `folder`, deepest first, then `folder` itself."""
    for root, _, files in os.walk(folder, topdown=False):
        for name in files:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                fsync_path(path)
        fsync_path(Path(root))


def aside(target: Path) -> Path:
    return target.parent / f".{target.name}.old"


def restore_aside(target: Path) -> None:
    """Undo a replacement killed between its two renames: the previous folder goes back in place."""
    old = aside(target)
    if not target.exists() and old.is_dir():
        old.rename(target)
        fsync_path(target.parent)


def replace_folder(new: Path, target: Path) -> None:
    """Put the finished folder `new` at `target`, replacing what is there; at every instant one of them is whole."""
    restore_aside(target)
    old = aside(target)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    fsync_path(target.parent)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def building(target: Path) -> Iterator[Path]:
    """Yields an empty folder to write `target` into; when the block ends without an error the folder is synced and
    replaces `target`; on an error (or a kill) `target` is untouched and the partial folder is removed (or, after a
    kill, by the next writer of `target`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_partials(target)
    tmp = partial_name(target)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        fsync_tree(tmp)
        replace_folder(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def partial_name(target: Path) -> Path:
    """Where to build `target` before renaming it in; host and pid name the writer, so its leftovers can be told
    from a live writer's work (`remove_dead_partials`)."""
    return target.parent / f".{target.name}.partial-{socket.gethostname()}-{os.getpid()}"


def remove_dead_partials(target: Path) -> list[Path]:
    """Delete the partial folders of `target` whose writer, on this host, is no longer running; those removed."""
    removed = []
    prefix = f".{target.name}.partial-"
    if not target.parent.is_dir():
        return removed
    for path in target.parent.iterdir():
        if not path.name.startswith(prefix):
            continue
        host, _, pid = path.name[len(prefix):].rpartition("-")
        if pid.isdigit() and host in ("", socket.gethostname()) and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
