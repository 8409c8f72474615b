"""`smvl infer`: answer a JSONL file of questions in batches; re-running skips ids already answered.

Input lines: {"id", "question" or "messages", "image" or "images" (paths relative to the file, or base64)}.
Output lines: {"id", "answer"} (plus "thinking" when the model thought), appended and flushed after every
batch, so a kill loses at most one batch. Questions are read lazily: only one batch of images is in memory, and
a line over `data.lines.MAX_RECORD_BYTES` or not valid UTF-8 is skipped and counted. Ids keep their JSON type:
`1` and `"1"` are two questions, and each answer carries its question's id as given.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from smvl.data.samples.images import load_image
from smvl.data.samples.sample import BadSample, Sample, video_parts
from smvl.data.samples.skips import SkipLog
from smvl.data.samples.video import VideoSampling, load_video
from smvl.data.sources.conversation import IMAGE_MARKER, VIDEO_MARKER, normalise_message
from smvl.data.sources.lines import read_lines
from smvl.errors import UserError
from smvl.infer.generate import generate_batch, split_thinking


@dataclass
class Report:
    written: int = 0
    already: int = 0
    skips: SkipLog = field(default_factory=lambda: SkipLog(max_fraction=1.0))

    def summary(self, output) -> str:
        return (f"answered {self.written} question(s) -> {output}; {self.already} already answered, "
                f"{self.skips.skipped} skipped")


def id_key(value) -> str:
    """An id as JSON text, so ids of different types never collide (`1` is not `"1"`)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def answered_ids(output: Path) -> set[str]:
    """Keys (`id_key`) of the ids already in the output; a last line cut by a kill is ignored (and answered again)."""
    done = set()
    if output.is_file():
        for _, line in read_lines(output):
            try:
                done.add(id_key(json.loads(line)["id"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return done


def drop_partial_line(output: Path) -> None:
    """A kill mid-write leaves half a line at the end; cut it so appended answers start on a line of their own."""
    if not output.is_file():
        return
    with open(output, "r+b") as f:
        size = f.seek(0, 2)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        # Walk back to the last newline in blocks: the file may be large, the partial line is short.
        end = size
        while end > 0:
            start = max(0, end - 65536)
            f.seek(start)
            at = f.read(end - start).rfind(b"\n")
            if at >= 0:
                f.truncate(start + at + 1)
                return
            end = start
        f.truncate(0)


def question_sample(record, sid: str, base_dir: Path, sampling=None) -> Sample:
    """One input record -> a Sample ending with a user turn, its images and videos loaded (frames as `sampling`,
    the model's video processor, says); BadSample otherwise."""
    if not isinstance(record, dict):
        raise BadSample("not an object")
    images = record.get("images", record.get("image", []))
    images = [images] if isinstance(images, (str, dict)) else images
    if not isinstance(images, list):
        raise BadSample("bad images field", f"{type(images).__name__}")
    videos = record.get("videos", record.get("video", []))
    videos = [videos] if isinstance(videos, (str, dict)) else videos
    if not isinstance(videos, list):
        raise BadSample("bad videos field", f"{type(videos).__name__}")
    if isinstance(record.get("messages"), list) and record["messages"]:
        messages = [normalise_message(m) for m in record["messages"]]
    elif isinstance(record.get("question"), str) and record["question"].strip():
        text = record["question"]
        if IMAGE_MARKER not in text and VIDEO_MARKER not in text:
            text = IMAGE_MARKER * len(images) + VIDEO_MARKER * len(videos) + text
        messages = [normalise_message({"role": "user", "content": text})]
    else:
        raise BadSample("missing question", "a line needs a non-empty `question` or `messages`")
    if messages[-1]["role"] != "user":
        raise BadSample("last turn not from the user")
    sample = Sample(messages, [], id=sid)
    if sample.image_parts() != len(images):
        raise BadSample("image count mismatch", f"{sample.image_parts()} image markers, {len(images)} images")
    if video_parts(sample.messages) != len(videos):
        raise BadSample("video count mismatch", f"{video_parts(sample.messages)} video markers, {len(videos)} videos")
    sample.images = [load_image(ref, base_dir) for ref in images]
    sample.videos = [load_video(ref, base_dir, sampling) for ref in videos]
    return sample


def questions(path: Path, done: set[str], report: Report, sampling=None) -> Iterator[tuple[object, Sample]]:
    """(id as given, question) for unanswered, usable questions in file order; everything else counted in
    `report`. A line without an id gets `file:LINE`."""
    seen: set[str] = set()
    for n, line in read_lines(path):
        qid = f"{path.name}:{n}"
        try:
            if isinstance(line, BadSample):
                raise line
            record = json.loads(line)
            if isinstance(record, dict) and record.get("id") is not None:
                qid = record["id"]
            key = id_key(qid)
            if key in done:
                report.already += 1
                continue
            if key in seen:
                raise BadSample("duplicate id")
            seen.add(key)
            sample = question_sample(record, str(qid), path.parent, sampling)
        except json.JSONDecodeError:
            report.skips.skip(str(qid), "invalid JSON")
            continue
        except BadSample as exc:
            report.skips.skip(str(qid), exc.reason)
            continue
        report.skips.ok()
        yield qid, sample


def answer_rows(model, processor, batch: list[tuple[object, Sample]], report: Report, thinking: bool,
                **options) -> list[dict]:
    """Answers for one batch of (id, question); if the batch fails, each question alone, so one bad input costs
    only itself."""
    try:
        answers = generate_batch(model, processor, [s.messages for _, s in batch], [s.images for _, s in batch],
                                 thinking=thinking, batch_size=len(batch), videos=[s.videos for _, s in batch],
                                 **options)
    except (ValueError, RuntimeError, IndexError, UserError) as exc:
        if len(batch) == 1:
            report.skips.skip(batch[0][1].id, f"generation failed: {type(exc).__name__}")
            return []
        return [row for q in batch for row in answer_rows(model, processor, [q], report, thinking, **options)]
    rows = []
    for (qid, _), text in zip(batch, answers):
        thought, answer = split_thinking(text)
        rows.append({"id": qid, "answer": answer, **({"thinking": thought} if thought else {})})
    return rows


def count_lines(path: Path) -> int:
    """Lines for the progress bar, counted in fixed-size reads: one line may be larger than memory."""
    count, last = 0, b"\n"
    with open(path, "rb") as f:
        while piece := f.read(2**20):
            count += piece.count(b"\n")
            last = piece[-1:]
    return count + (last != b"\n")


def run_batch_inference(model, processor, input_path: Path, output_path: Path, batch_size: int = 8,
                        thinking: bool = False, **options) -> Report:
    report = Report()
    drop_partial_line(output_path)
    done = answered_ids(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with open(output_path, "a", encoding="utf-8") as out, \
            tqdm(total=count_lines(input_path), desc="answering", unit="q") as bar:

        def flush(batch: list[tuple[object, Sample]]) -> None:
            for row in answer_rows(model, processor, batch, report, thinking, **options):
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                report.written += 1
            out.flush()

        batch: list[tuple[object, Sample]] = []
        consumed = 0
        video_processor = getattr(processor, "video_processor", None)
        sampling = VideoSampling.of(video_processor) if video_processor is not None else None
        for question in questions(input_path, done, report, sampling):
            batch.append(question)
            if len(batch) == batch_size:
                flush(batch)
                batch = []
            # The bar counts input lines, answered or not, so it ends at the file's size.
            seen = report.already + report.skips.seen
            bar.update(seen - consumed)
            consumed = seen
        if batch:
            flush(batch)
        bar.update(bar.total - bar.n)
    return report
