"""A `.json` list of records read one record at a time: memory holds one record, not the file.

Every rank and DataLoader worker re-reads the file each epoch, so parsing it whole (LLaVA-665k is over 1 GB) cost
each of them the whole list in memory. Records are decoded with the C parser straight from a sliding window of the
file; a record over the size limit is stepped over by a scan that keeps nothing, and counted. Bad bytes are kept as
surrogates while reading (surrogateescape), so a record holding one is skipped as invalid UTF-8 and the rest read.
A file that is not a JSON list at all is the user's to fix: one UserError naming where it goes wrong.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from pathlib import Path

from smvl.data.samples.sample import BadSample
from smvl.data.sources import lines
from smvl.errors import UserError

_CHUNK = 2**20
_SPACE = re.compile(r"[ \t\n\r]*")
_BAD_BYTE = re.compile("[\udc80-\udcff]")
_IN_STRING = re.compile(r'["\\]')
_STRUCTURE = re.compile(r'["\[\]{},]')


class _Window:
    """The unread part of a file as text: `text[pos:]` plus what `more()` appends."""

    def __init__(self, f):
        self.f, self.text, self.pos, self.offset, self.eof = f, "", 0, 0, False
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="surrogateescape")

    def more(self) -> bool:
        """Append at least a chunk (as much as is held, so re-parsing a growing record stays linear)."""
        if self.eof:
            return False
        data = self.f.read(max(_CHUNK, len(self.text) - self.pos))
        self.eof = not data
        self.offset += self.pos
        self.text = self.text[self.pos:] + self.decoder.decode(data, final=self.eof)
        self.pos = 0
        return True

    def skip_space(self) -> str:
        """The next non-space character ('' at the end of the file), not consumed."""
        while True:
            self.pos = _SPACE.match(self.text, self.pos).end()
            if self.pos < len(self.text) or not self.more():
                return self.text[self.pos:self.pos + 1]

    def where(self) -> str:
        return f"character {self.offset + self.pos:,}"


def json_records(path: Path, limit: int | None = None) -> Iterator[object]:
    """Each element of the file's top-level list (or a BadSample for one too long or holding bad bytes)."""
    limit = lines.MAX_RECORD_BYTES if limit is None else limit
    decoder = json.JSONDecoder()
    with open(path, "rb") as f:
        w = _Window(f)
        first = w.skip_space()
        if first != "[":
            kind = {"{": "an object", "": "an empty file"}.get(first, "not a list")
            raise UserError(f"data file {path} must hold a JSON list of records, not {kind}")
        w.pos += 1
        if w.skip_space() == "]":
            return
        while True:
            yield _element(w, decoder, limit, path)
            sep = w.skip_space()
            w.pos += 1
            if sep == "]":
                return
            if sep != ",":
                raise UserError(f"data file {path} is not valid JSON: expected ',' or ']' at {w.where()}")
            w.skip_space()


def _element(w: _Window, decoder: json.JSONDecoder, limit: int, path: Path):
    while True:
        try:
            record, end = decoder.raw_decode(w.text, w.pos)
            # A number cut by the window parses as a shorter number: only trust a value followed by something.
            if end < len(w.text) or w.eof:
                start, w.pos = w.pos, end
                if end - start > limit:  # the same bound whatever the window happened to hold
                    return BadSample("record too long", f"{end - start:,} characters (limit {limit:,} bytes)")
                if _BAD_BYTE.search(w.text, start, end):
                    return BadSample("invalid UTF-8", "a byte that is not UTF-8")
                return record
        except json.JSONDecodeError as exc:
            # Cut by the window (read more) or wrong where it stands (no way to find the next record).
            cut = exc.msg.startswith("Unterminated string") or exc.pos >= len(w.text) - 6
            if w.eof or not cut:
                raise UserError(f"data file {path} is not valid JSON at character {w.offset + exc.pos:,}: "
                                f"{exc.msg}") from None
        if len(w.text) - w.pos > limit:
            skipped = _skip_value(w)
            return BadSample("record too long", f"{skipped:,} characters (limit {limit:,} bytes)")
        w.more()


def _skip_value(w: _Window) -> int:
    """Step over one JSON value (well-formed or not), keeping no more than a chunk; the characters stepped over."""
    start, depth, in_string = w.offset + w.pos, 0, False
    while True:
        m = (_IN_STRING if in_string else _STRUCTURE).search(w.text, w.pos)
        if m is None or m.end() >= len(w.text) and not w.eof:
            w.pos = len(w.text) if m is None else m.start()  # an escape's next character may not be read yet
            if not w.more():
                return w.offset + w.pos - start
            continue
        c = m.group()
        if in_string:
            w.pos = m.end() + (c == "\\")  # an escape: step over the escaped character too
            if c == '"':
                in_string = False
                if depth == 0:
                    return w.offset + w.pos - start
            continue
        if c in ",]}" and depth == 0:
            w.pos = m.start()
            return w.offset + w.pos - start
        w.pos = m.end()
        if c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
            if depth == 0:
                return w.offset + w.pos - start
