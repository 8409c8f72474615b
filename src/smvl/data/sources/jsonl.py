"""Our JSONL format and the LLaVA/ShareGPT JSON format, one sample per record.

smvl JSONL, one JSON object per line:

    {"id": "q1", "images": ["imgs/cat.jpg"], "messages": [
        {"role": "user", "content": "<image>图中有什么动物？"},
        {"role": "assistant", "content": "一只猫。"}]}

- `images`: paths relative to the JSONL file, absolute paths, or base64 / `data:image/...;base64,` strings.
- `content`: a string where each `<image>` marks where the next image goes, or a list of parts
  `{"type": "text", "text": ...}` / `{"type": "image"}`. Roles: system, user, assistant. All turns are used.
- `id` is optional (the default is `file.jsonl:LINE`).
- Tool use and thinking, in OpenAI's message shape: a record's `tools` (function schemas); an assistant message's
  `tool_calls` and `reasoning_content` (or `<think>...</think>` opening its content); `tool` messages with the
  result (`tool_call_id`, `name`). Training labels the trace, the calls and the answer, never the schemas or
  results (`smvl.data.sources.tool_messages`).
- `videos`: video files (any container/codec FFmpeg reads), folders of frame images, `{"path": folder, "fps": 2}`,
  or `data:video/...;base64,` strings, placed by `<video>` markers or `{"type": "video"}` parts (`smvl.data.samples.video`).
  LLaVA-Video records give them as `"video"`.

LLaVA / ShareGPT (`.json` list or `.jsonl`): `{"id", "image": path or [paths], "conversations": [{"from": "human" |
"gpt" | "system", "value": "<image>\\n..."}]}`; with tools as LLaMA-Factory writes them: `function_call` and
`observation` turns, and `tools` and `system` fields on the record. A record is skipped, with its reason counted, on invalid JSON or
UTF-8, a line or record over `lines.MAX_RECORD_BYTES`, missing fields, marker/image count mismatch, empty answers
or unreadable images. Both are read one record at a time (`.json` through `jsonarray`), never whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from smvl.data.samples.sample import BadSample, Sample
from smvl.data.samples.skips import SkipLog
from smvl.data.sources.conversation import build_sample
from smvl.data.sources.jsonarray import json_records
from smvl.data.sources.lines import read_lines


def _records(path: Path) -> Iterator[tuple[str, object]]:
    """(id, record or BadSample) for a .jsonl file (line by line) or a .json list (record by record)."""
    if path.suffix == ".json":
        for i, record in enumerate(json_records(path)):
            yield f"{path.name}:{i}", record
        return
    for line_no, line in read_lines(path):
        sid = f"{path.name}:{line_no}"
        if isinstance(line, BadSample):
            yield sid, line
            continue
        try:
            yield sid, json.loads(line)
        except json.JSONDecodeError as exc:
            yield sid, BadSample("invalid JSON", str(exc))


def to_sample(record, sid: str, base_dir: Path, source: str, lazy: bool = False) -> Sample:
    if isinstance(record, BadSample):
        raise record
    if not isinstance(record, dict):
        raise BadSample("malformed record", f"expected an object, got {type(record).__name__}")
    sid = str(record.get("id", sid))
    videos = record.get("videos", record.get("video", []))
    extra = {"tools": record.get("tools"), "system": record.get("system")}
    if "conversations" in record:
        images = record.get("image", record.get("images", []))
        return build_sample(record["conversations"], images, sid, source, base_dir, lazy, videos, **extra)
    if "messages" in record:
        images = record.get("images", record.get("image", []))
        return build_sample(record["messages"], images, sid, source, base_dir, lazy, videos, **extra)
    raise BadSample("missing fields", "a record needs `messages` (smvl) or `conversations` (LLaVA)")


def read_chat_file(path: str | Path, skips: SkipLog, select=None, lazy: bool = False) -> Iterator[Sample]:
    """Samples of one file; `select` (a split.Selector: split and shard) is asked before anything is decoded;
    `lazy` leaves images undecoded (`smvl.data.samples.lazy`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    for index, (sid, record) in enumerate(_records(path)):
        if select is not None and select.exhausted(index):
            return
        if select is not None and not select(index):
            continue
        try:
            sample = to_sample(record, sid, path.parent, f"file:{path.name}", lazy)
        except BadSample as exc:
            skips.skip(sid, exc.reason)
            continue
        skips.ok()
        yield sample
