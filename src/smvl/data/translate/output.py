"""The output JSONL, written one flushed line per sample and resumable: a re-run drops a partial last line (the
kill fell mid-write) and skips the sample ids already written."""

from __future__ import annotations

import json
import os
from pathlib import Path


class Output:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.done: set[str] = set()  # only the ids: a resumed output of millions of records stays on disk
        if self.path.is_file():
            whole = 0  # bytes up to the end of the last complete line
            with open(self.path, "rb") as f:
                for line in f:
                    if not line.endswith(b"\n"):
                        break
                    whole += len(line)
                    try:
                        self.done.add(str(json.loads(line)["id"]))
                    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
                        continue
            if whole < self.path.stat().st_size:
                os.truncate(self.path, whole)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        self.done.add(str(record["id"]))

    def close(self) -> None:
        self._file.close()
