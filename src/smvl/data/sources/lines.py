"""Lines of a text data file with a bound on their length: a 10 GB line is skipped and counted, never read whole.

Lines are read as bytes and decoded strictly, so bad bytes skip their line (counted) instead of silently becoming
U+FFFD; a UTF-8 byte order mark before the first line is dropped, as editors on Windows write one.
"""

from __future__ import annotations

import codecs
import itertools
from collections.abc import Iterator
from pathlib import Path

from smvl.data.samples.sample import BadSample

MAX_RECORD_BYTES = 64 * 2**20  # room for a few base64 photos in one record
_DRAIN = 2**20


def read_lines(path: Path, limit: int | None = None) -> Iterator[tuple[int, str | BadSample]]:
    """(line number, text or BadSample) for every non-blank line; memory stays within `limit` bytes a line."""
    limit = MAX_RECORD_BYTES if limit is None else limit
    with open(path, "rb") as f:
        for line_no in itertools.count(1):
            line = f.readline(limit + 1)
            if not line:
                return
            if line_no == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8):]
            if len(line) > limit and not line.endswith(b"\n"):
                size = len(line) + _drain_line(f)
                yield line_no, BadSample("line too long", f"{size:,} bytes (limit {limit:,})")
                continue
            if not line.strip():
                continue
            try:
                yield line_no, line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield line_no, BadSample("invalid UTF-8", f"byte {exc.start} of the line")


def _drain_line(f) -> int:
    """Read past the rest of an over-long line in bounded pieces; the bytes skipped."""
    skipped = 0
    while True:
        piece = f.readline(_DRAIN)
        skipped += len(piece)
        if not piece or piece.endswith(b"\n"):
            return skipped

