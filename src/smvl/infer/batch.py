"""`smvl infer`: answer a JSONL file of questions in batches; re-running skips ids already answered.

Input lines: {"id", "question" or "messages", "image" or "images" (paths relative to the file, or base64)}.
Output lines: {"id", "answer"} appended and flushed after every batch, so a kill loses at most one batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from smvl.data.conversation import build_sample
from smvl.data.sample import BadSample, Sample
from smvl.data.skips import SkipLog
from smvl.infer.generate import generate_batch


def answered_ids(output: Path) -> set[str]:
    """Ids already in the output; a last line cut by a kill is ignored (and its id answered again)."""
    done = set()
    if output.is_file():
        for line in output.read_text(encoding="utf-8").splitlines():
            try:
                done.add(str(json.loads(line)["id"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return done


def drop_partial_line(output: Path) -> None:
    """A kill mid-write leaves half a line at the end; cut it so appended answers start on a line of their own."""
    if not output.is_file():
        return
    data = output.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(output, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def questions(path: Path, skips: SkipLog) -> Iterator[tuple[str, Sample]]:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        sid = f"{path.name}:{n}"
        try:
            record = json.loads(line)
            sid = str(record.get("id", sid))
            images = record.get("images", record.get("image", []))
            if "messages" in record:
                messages = record["messages"]
            elif isinstance(record.get("question"), str):
                images = [images] if isinstance(images, str) else images
                text = record["question"] if "<image>" in record["question"] else "<image>" * len(images) + record["question"]
                messages = [{"role": "user", "content": text}]
            else:
                raise BadSample("missing fields", "a line needs `question` or `messages`")
            # build_sample wants an answer; a placeholder keeps its checks, and is dropped again below.
            sample = build_sample(messages + [{"role": "assistant", "content": "-"}], images, sid, path.name, path.parent)
        except json.JSONDecodeError:
            skips.skip(sid, "invalid JSON")
            continue
        except BadSample as exc:
            skips.skip(sid, exc.reason)
            continue
        skips.ok()
        sample.messages = sample.messages[:-1]
        yield sid, sample


def run_batch_inference(model, processor, input_path: Path, output_path: Path, batch_size: int = 8,
                        thinking: bool = False, **options) -> tuple[int, SkipLog]:
    skips = SkipLog(max_fraction=1.0)
    drop_partial_line(output_path)
    done = answered_ids(output_path)
    todo = [(sid, s) for sid, s in questions(input_path, skips) if sid not in done]
    written = 0
    with open(output_path, "a", encoding="utf-8") as out, tqdm(total=len(todo), desc="answering") as bar:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            answers = generate_batch(model, processor, [s.messages for _, s in chunk], [s.images for _, s in chunk],
                                     thinking=thinking, batch_size=batch_size, **options)
            for (sid, _), answer in zip(chunk, answers):
                out.write(json.dumps({"id": sid, "answer": answer}, ensure_ascii=False) + "\n")
            out.flush()
            written += len(chunk)
            bar.update(len(chunk))
    return written, skips
