"""Image-caption data as users have it: a folder of images with a caption file, each pair a one-turn sample.

The folder holds the images and one of `captions.jsonl`, `captions.csv`, `captions.tsv` (or Hugging Face
imagefolder's `metadata.jsonl` / `metadata.csv`). JSONL has one object per line; CSV/TSV files start with a header
row and are parsed as CSV, so a quoted caption may hold line breaks (and the delimiter). The image column is `image`
or `file_name` (HF imagefolder), the caption column `caption` or `text`. Image paths are relative to the folder (or
absolute). A caption file given directly (`.csv`/`.tsv`) works too.

Each record becomes user = image + a prompt drawn from `caption_prompts_zh.txt` (deterministic by seed, source and
record index), assistant = the caption. Captioning is what stage 1 (connector only) trains on: it aligns the image
tokens with the LLM's words before any question answering is asked of them.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from pathlib import Path

from smvl.data.samples.lazy import ImageRef, decode
from smvl.data.samples.sample import BadSample, Sample
from smvl.data.samples.skips import SkipLog
from smvl.data.sources import lines
from smvl.errors import UserError

CAPTION_FILES = ("captions.jsonl", "captions.csv", "captions.tsv", "metadata.jsonl", "metadata.csv")
IMAGE_KEYS = ("image", "file_name")
CAPTION_KEYS = ("caption", "text")


@lru_cache(maxsize=1)
def prompts() -> tuple[str, ...]:
    text = resources.files("smvl.data.sources").joinpath("caption_prompts_zh.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def prompt_for(seed: int, key: str, index: int) -> str:
    """The same prompt for the same record on every run, rank and worker: a hash, not a shared RNG's position."""
    digest = hashlib.blake2b(f"{seed}:{key}:{index}".encode(), digest_size=8).digest()
    choices = prompts()
    return choices[int.from_bytes(digest, "big") % len(choices)]


def caption_sample(image, caption, sid: str, source: str, prompt: str, base_dir: Path | None = None,
                   lazy: bool = False) -> Sample:
    if not isinstance(caption, str):
        raise BadSample("missing caption" if caption is None else "non-string content", sid)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]},
                {"role": "assistant", "content": caption.strip()}]
    sample = Sample(messages, [ImageRef(image, base_dir)], id=sid, source=source).validate()
    return sample if lazy else decode(sample)


def caption_file(folder: Path) -> Path | None:
    """The folder's caption file; more than one is ambiguous, so it is an error rather than a guess."""
    found = [folder / name for name in CAPTION_FILES if (folder / name).is_file()]
    if len(found) > 1:
        raise UserError(f"{folder} holds {' and '.join(p.name for p in found)}: keep one caption file")
    return found[0] if found else None


def _field(record: dict, keys: tuple[str, ...]):
    return next((record[k] for k in keys if k in record), None)


def _header(path: Path, row: list[str]) -> list[str]:
    header = [h.strip().lower() for h in row]
    if not set(header) & set(IMAGE_KEYS) or not set(header) & set(CAPTION_KEYS):
        raise UserError(f"{path}: the header row needs an image column ({' or '.join(IMAGE_KEYS)}) and a caption "
                        f"column ({' or '.join(CAPTION_KEYS)}); it has {', '.join(header) or 'nothing'}")
    return header


class _BoundedLines:
    """A CSV file's physical lines for csv.reader, each at most `limit` bytes: an over-long one is read past in
    pieces and raised as BadSample, and the reader starts afresh on the next line. Bytes that are not UTF-8 are kept
    as surrogates, so they fail their own record rather than the file; a UTF-8 byte order mark is dropped."""

    def __init__(self, f, limit: int | None = None):
        self.f, self.line_no = f, 0
        self.limit = lines.MAX_RECORD_BYTES if limit is None else limit

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self.f.readline(self.limit + 1)
        if not line:
            raise StopIteration
        self.line_no += 1
        if self.line_no == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8):]
        if len(line) > self.limit and not line.endswith(b"\n"):
            size = len(line)
            while line and not line.endswith(b"\n"):
                line = self.f.readline(2**20)
                size += len(line)
            raise BadSample("line too long", f"{size:,} bytes (limit {self.limit:,})")
        return line.decode("utf-8", "surrogateescape")


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str] | BadSample]]:
    """(line the record starts on, its fields or BadSample) for every non-blank CSV/TSV record; a quoted field may
    span lines (a caption with line breaks), so records are parsed over the file, not a line at a time."""
    with open(path, "rb") as f:
        physical = _BoundedLines(f)
        rows = csv.reader(physical, delimiter="\t" if path.suffix == ".tsv" else ",")
        while True:
            start = physical.line_no + 1
            try:
                row = next(rows)
            except StopIteration:
                return
            except BadSample as exc:
                yield start, exc
                continue
            except csv.Error as exc:
                yield start, BadSample("malformed record", str(exc))
                continue
            if not any(field.strip() for field in row):
                continue
            try:
                "".join(row).encode("utf-8")
            except UnicodeEncodeError:
                yield start, BadSample("invalid UTF-8", "the record holds bytes that are not UTF-8")
                continue
            yield start, row


def _records(path: Path) -> Iterator[tuple[str, dict | BadSample]]:
    """(id, record or BadSample): JSONL line by line, CSV/TSV record by record, each bounded in size."""
    if path.suffix == ".jsonl":
        for line_no, line in lines.read_lines(path):
            yield f"{path.name}:{line_no}", _json_record(line)
        return
    header = None
    for line_no, row in _csv_rows(path):
        sid = f"{path.name}:{line_no}"
        if header is None:
            header = _header(path, _header_row(path, row))
        elif isinstance(row, BadSample):
            yield sid, row
        elif len(row) != len(header):
            yield sid, BadSample("malformed record", f"{len(row)} columns, the header has {len(header)}")
        else:
            yield sid, dict(zip(header, row))


def _json_record(line: str | BadSample) -> dict | BadSample:
    if isinstance(line, BadSample):
        return line
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return BadSample("invalid JSON", str(exc))
    return record if isinstance(record, dict) else BadSample("malformed record", "expected an object")


def _header_row(path: Path, row: list[str] | BadSample) -> list[str]:
    if isinstance(row, BadSample):
        raise UserError(f"{path}: the header row is unreadable ({row})")
    return row


def read_caption_file(path: str | Path, skips: SkipLog, select, seed: int = 0, lazy: bool = False) -> Iterator[Sample]:
    """Samples of one caption file; `select` (a split.Selector) is asked before any image is opened."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"caption file {path} does not exist")
    for index, (sid, record) in enumerate(_records(path)):
        if select.exhausted(index):
            return
        if not select(index):
            continue
        try:
            if isinstance(record, BadSample):
                raise record
            image = _field(record, IMAGE_KEYS)
            if not isinstance(image, str) or not image.strip():
                raise BadSample("missing image", f"no {' or '.join(IMAGE_KEYS)} field")
            sample = caption_sample(image.strip(), _field(record, CAPTION_KEYS), sid, f"captions:{path.parent.name}",
                                    prompt_for(seed, path.name, index), path.parent, lazy)
        except BadSample as exc:
            skips.skip(sid, exc.reason)
            continue
        skips.ok()
        yield sample


def check_caption_file(path: Path) -> None:
    """A CSV/TSV header without the needed columns fails now, not inside a DataLoader worker."""
    if path.suffix not in (".csv", ".tsv"):
        return
    for _, row in _csv_rows(path):
        _header(path, _header_row(path, row))
        return
    raise UserError(f"{path} is empty")
