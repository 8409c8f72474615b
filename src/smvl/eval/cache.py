"""Predictions kept between runs of `smvl eval`, so that a re-run resumes rather than generating again.

An answer is reused only for the same model and the same question: its key digests the model's identity (where the
folder is, config.json, and the name, size and modification time of every file in it, so retraining in place or
another model of the same folder name never matches) and the question's (data source, seed, sample id and source,
condition, the prompt and the pixels it is asked with). Lines are appended as answers come; when a key appears
twice, the later line wins (`--force` regenerates and appends).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from smvl.infer.batch import drop_partial_line


def digest(*parts) -> str:
    return hashlib.blake2b(json.dumps(parts, ensure_ascii=False, default=str).encode(), digest_size=16).hexdigest()


def model_identity(model_dir: Path) -> str:
    model_dir = Path(model_dir).resolve()
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in model_dir.iterdir() if p.is_file())
    return digest(str(model_dir), (model_dir / "config.json").read_text(encoding="utf-8"), files)


class PredictionCache:
    """{key: answer} read from a JSONL file (unless `force`), each new answer appended and flushed at once."""

    def __init__(self, path: Path, force: bool = False):
        self.path, self.answers = Path(path), {}
        drop_partial_line(self.path)
        if self.path.is_file() and not force:
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self.answers[row["key"]] = row["answer"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line from before answers had keys

    def __contains__(self, key: str) -> bool:
        return key in self.answers

    def __getitem__(self, key: str) -> str:
        return self.answers[key]

    def add(self, rows: list[dict]) -> None:
        """Rows of {"key", "answer", ...}; the other fields only help a reader of the file."""
        with open(self.path, "a", encoding="utf-8") as out:
            for row in rows:
                self.answers[row["key"]] = row["answer"]
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
