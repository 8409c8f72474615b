"""The output JSONL, written one flushed line per sample and resumable: a re-run drops a partial last line (the
kill fell mid-write) and skips the sample ids already written."""

from __future__ import annotations

import json
import os
from pathlib import Path


class Output:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.done: set[str] = set()
        if self.path.is_file():
            with open(self.path, "rb") as f:
                data = f.read()
            whole = data[: data.rfind(b"\n") + 1]
            for line in whole.splitlines():
                try:
                    self.done.add(str(json.loads(line)["id"]))
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
            if len(whole) < len(data):
                os.truncate(self.path, len(whole))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        self.done.add(str(record["id"]))

    def close(self) -> None:
        self._file.close()
