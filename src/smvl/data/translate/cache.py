"""Translations already paid for: an append-only JSONL keyed by sha256(model, prompt, source text), one line per
answer, flushed as it comes, so a run killed with `kill -9` loses at most the requests in flight.

A rejected translation is cached too, with its reason: a re-run does not ask again for a text the model could not
translate (unless `retry_rejected`). A partial last line (the kill fell mid-write) is ignored and overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def cache_key(model: str, prompt: str, text: str) -> str:
    return hashlib.sha256(json.dumps([model, prompt, text], ensure_ascii=False).encode()).hexdigest()


class Cache:
    def __init__(self, path: Path, retry_rejected: bool = False):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        if self.path.is_file():
            with open(self.path, "rb") as f:
                data = f.read()
            whole = data[: data.rfind(b"\n") + 1]
            for line in whole.splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                    if retry_rejected and "rejected" in entry:
                        continue
                    self.entries[entry["key"]] = entry
            if len(whole) < len(data):
                os.truncate(self.path, len(whole))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def get(self, key: str) -> dict | None:
        """{"text": translation} or {"rejected": reason}, or None when never asked."""
        return self.entries.get(key)

    def put(self, key: str, text: str | None = None, rejected: str | None = None) -> None:
        entry = {"key": key, "rejected": rejected} if rejected else {"key": key, "text": text}
        self.entries[key] = entry
        self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
