"""Image-caption data as users have it: a folder of images with a caption file, each pair a one-turn sample.

The folder holds the images and one of `captions.jsonl`, `captions.csv`, `captions.tsv` (or Hugging Face
imagefolder's `metadata.jsonl` / `metadata.csv`). JSONL lines are objects, CSV/TSV files start with a header row;
one record per line either way. The image column is `image` or `file_name` (HF imagefolder), the caption column
`caption` or `text`. Image paths are relative to the folder (or absolute). A caption file given directly
(`.csv`/`.tsv`) works too.

Each record becomes user = image + a prompt drawn from `caption_prompts_zh.txt` (deterministic by seed, source and
record index), assistant = the caption. Captioning is what stage 1 (connector only) trains on: it aligns the image
tokens with the LLM's words before any question answering is asked of them.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from pathlib import Path

from smvl.data.lazy import ImageRef, decode
from smvl.data.lines import read_lines
from smvl.data.sample import BadSample, Sample
from smvl.data.skips import SkipLog
from smvl.errors import UserError

CAPTION_FILES = ("captions.jsonl", "captions.csv", "captions.tsv", "metadata.jsonl", "metadata.csv")
IMAGE_KEYS = ("image", "file_name")
CAPTION_KEYS = ("caption", "text")


@lru_cache(maxsize=1)
def prompts() -> tuple[str, ...]:
    text = resources.files("smvl.data").joinpath("caption_prompts_zh.txt").read_text(encoding="utf-8")
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


def _header(path: Path, line: str, delimiter: str) -> list[str]:
    header = [h.strip().lower() for h in next(csv.reader([line], delimiter=delimiter))]
    if not set(header) & set(IMAGE_KEYS) or not set(header) & set(CAPTION_KEYS):
        raise UserError(f"{path}: the header row needs an image column ({' or '.join(IMAGE_KEYS)}) and a caption "
                        f"column ({' or '.join(CAPTION_KEYS)}); it has {', '.join(header) or 'nothing'}")
    return header


def _records(path: Path) -> Iterator[tuple[str, dict | BadSample]]:
    """(id, record or BadSample) line by line, each line bounded (`lines.read_lines`)."""
    delimiter = "\t" if path.suffix == ".tsv" else ","
    header = None
    for line_no, line in read_lines(path):
        sid = f"{path.name}:{line_no}"
        if isinstance(line, BadSample):
            yield sid, line
            continue
        if path.suffix == ".jsonl":
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield sid, BadSample("invalid JSON", str(exc))
                continue
            yield sid, record if isinstance(record, dict) else BadSample("malformed record", "expected an object")
            continue
        if header is None:
            header = _header(path, line, delimiter)
            continue
        try:
            row = next(csv.reader([line], delimiter=delimiter))
        except csv.Error as exc:
            yield sid, BadSample("malformed record", str(exc))
            continue
        if len(row) != len(header):
            yield sid, BadSample("malformed record", f"{len(row)} columns, the header has {len(header)}")
            continue
        yield sid, dict(zip(header, row))


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
    for _, line in read_lines(path):
        if isinstance(line, BadSample):
            raise UserError(f"{path}: the header row is unreadable ({line})")
        _header(path, line, "\t" if path.suffix == ".tsv" else ",")
        return
    raise UserError(f"{path} is empty")
