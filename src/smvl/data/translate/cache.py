"""Translations already paid for, in SQLite keyed by sha256(model, prompt, source text): one row per answer,
committed as it comes, so a run killed with `kill -9` loses at most the requests in flight; lookups stay on disk,
whatever the number of texts (the_cauldron has millions).

A rejected translation is stored too, with its reason: a re-run does not ask again for a text the model could not
translate (unless `retry_rejected`, which forgets the rejections first).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path


def cache_key(model: str, prompt: str, text: str) -> str:
    return hashlib.sha256(json.dumps([model, prompt, text], ensure_ascii=False).encode()).hexdigest()


class Cache:
    def __init__(self, path: Path, retry_rejected: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)  # autocommit: one transaction per answer
        # WAL without a sync per commit: a commit survives the process being killed (not a power cut, which costs
        # at most the last answers, asked again next run).
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, text TEXT, rejected TEXT)")
        if retry_rejected:
            self.db.execute("DELETE FROM answers WHERE rejected IS NOT NULL")

    def get(self, key: str) -> dict | None:
        """{"text": translation} or {"rejected": reason}, or None when never asked."""
        row = self.db.execute("SELECT text, rejected FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return {"rejected": row[1]} if row[1] is not None else {"text": row[0]}

    def put(self, key: str, text: str | None = None, rejected: str | None = None) -> None:
        self.db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)", (key, None if rejected else text,
                                                                            rejected or None))

    def close(self) -> None:
        self.db.close()
