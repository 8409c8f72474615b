"""ModelScope (魔搭) as a second hub, for users who reach it and not Hugging Face: `modelscope:owner/name` anywhere a
hub id is taken, or every bare `owner/name` model id with `SMVL_HUB=modelscope` (`smvl --hub modelscope ...`).

Through the optional `modelscope` package (`pip install 'smvl[modelscope]'`), imported only when a ModelScope id is
used: its downloads keep their own cache (~/.cache/modelscope) and return a local folder, which is then read exactly
as a local folder would be.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

PREFIX = "modelscope:"
ENV = "SMVL_HUB"
HUBS = ("huggingface", "modelscope")
INSTALL = "pip install 'smvl[modelscope]'"


class HubError(ValueError):
    """A ModelScope id that cannot be fetched; the message is one sentence for the user."""


def default_hub() -> str:
    hub = os.environ.get(ENV, "huggingface").strip().lower() or "huggingface"
    if hub not in HUBS:
        raise HubError(f"{ENV}={hub!r} is not a hub this knows: use {' or '.join(HUBS)}")
    return hub


def modelscope_id(src: str, bare: bool = True) -> str | None:
    """The ModelScope repo id `src` names, or None: `modelscope:owner/name` always, a bare id (`bare`) when
    SMVL_HUB=modelscope."""
    if src.startswith(PREFIX):
        return src[len(PREFIX):]
    if bare and default_hub() == "modelscope":
        return src
    return None


def _api():
    try:
        import modelscope
    except ImportError:
        raise HubError(f"ModelScope ids need the modelscope package: {INSTALL}") from None
    return modelscope


def _one_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def download_model(repo_id: str, patterns: list[str]) -> Path:
    api = _api()
    try:
        return Path(api.snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:  # network, auth, missing repo: all end the same way for the user
        raise HubError(f"{PREFIX}{repo_id} could not be fetched from ModelScope: {_one_line(exc)}") from exc


@lru_cache(maxsize=16)
def download_dataset(repo_id: str, patterns: tuple[str, ...] | None = None) -> Path:
    """A dataset repo's files (`patterns` only: the_cauldron is 169 GB) as a local folder. Cached per process:
    every epoch, rank and DataLoader worker opens the source again, and each call would ask the hub."""
    api = _api()
    try:
        return Path(api.dataset_snapshot_download(repo_id, allow_patterns=list(patterns) if patterns else None))
    except Exception as exc:  # noqa: BLE001 - as download_model
        raise HubError(f"{PREFIX}{repo_id} could not be fetched from ModelScope: {_one_line(exc)}") from exc
