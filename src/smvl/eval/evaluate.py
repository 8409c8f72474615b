"""`smvl eval`: answers with real, blank and shuffled images (and frozen frames for videos), metrics per subset,
eval loss, text retention.

Predictions are appended to `<out>/predictions-<model>.jsonl` as they are made, keyed by model and question
(`eval/cache.py`), so a re-run resumes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from smvl.data.batches.collate import CollateOptions, Encoder, collate
from smvl.data.batches.pixels import normalise_on_model
from smvl.data.samples.sample import BadSample, Sample, text_of, video_parts
from smvl.eval.cache import PredictionCache, digest, model_identity
from smvl.eval.image_use import blank_like, first_question, majority_baseline, question_kind
from smvl.eval.metrics import metric_for
from smvl.eval.normalize import normalize_answer
from smvl.eval.shuffle import image_key, shuffled_partners
from smvl.infer.generate import generate_batch, load

CONDITIONS = ("with_images", "blank_images", "shuffled_images", "frozen_frames")
MAX_NEW_TOKENS = 32


def subset_of(sample: Sample) -> str:
    if sample.source.startswith("synthetic-video"):
        return "synthetic-video"
    return "synthetic" if sample.source.startswith("synthetic") else (sample.source or "data")


def video_key(videos: list) -> str:
    """A digest of a sample's video frames and timestamps (part of the cache key, and of the shuffle's sameness)."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for v in videos:
        h.update(f"{tuple(v.frames.shape)}:{v.timestamps}:{v.duration}:".encode())
        h.update(v.frames.contiguous().numpy().tobytes())
    return h.hexdigest()


def shown(condition: str, images: list, videos: list) -> tuple[list, list]:
    """The images and videos a condition asks with (blank: black; frozen: every frame the first)."""
    if condition == "blank_images":
        return blank_like(images), [v.blank() for v in videos]
    if condition == "frozen_frames":
        return images, [v.frozen() for v in videos]
    return images, videos


def predict(model, processor, samples: list[Sample], cache: PredictionCache, identity: list, batch_size: int,
            seed: int) -> tuple[dict, list]:
    """({(sample index, condition): answer}, shuffled partners), generating only what `cache` does not hold.

    `identity` (the model's, the data source's and the seed) goes into every cache key.
    """
    questions = [first_question(s) for s in samples]
    prompts = [prompt for prompt, _, _ in questions]
    own = [s.images[:used] for s, (_, _, used) in zip(samples, questions)]
    clips = [s.videos[:video_parts(prompt)] for s, prompt in zip(samples, prompts)]
    keys = [image_key(images) + (video_key(videos) if videos else "") for images, videos in zip(own, clips)]
    # Shuffled within groups of the same image count, video count and frame counts: the prompt stays valid.
    shapes = [(len(images), tuple(len(v) for v in videos)) for images, videos in zip(own, clips)]
    partners = shuffled_partners(shapes, keys, seed)
    answers = {}
    for condition in CONDITIONS:
        todo = []
        for i, s in enumerate(samples):
            j = partners[i] if condition == "shuffled_images" else i  # whose images sample i is asked with
            if j is None or (condition == "frozen_frames" and not clips[i]):
                continue
            # Blank images are black with the sizes of its own, which keys[i] covers.
            key = digest(*identity, s.source, s.id, condition, prompts[i], keys[j], MAX_NEW_TOKENS)
            if key in cache:
                answers[i, condition] = cache[key]
            else:
                todo.append((i, j, key))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            images, videos = zip(*(shown(condition, own[j], clips[j]) for _, j, _ in chunk))
            generated = generate_batch(model, processor, [prompts[i] for i, _, _ in chunk], list(images),
                                       videos=list(videos), max_new_tokens=MAX_NEW_TOKENS)
            cache.add([{"key": key, "id": samples[i].id, "condition": condition, "answer": answer}
                       for (i, _, key), answer in zip(chunk, generated)])
            answers.update({(i, condition): answer for (i, _, _), answer in zip(chunk, generated)})
    return answers, partners


@torch.no_grad()
def eval_loss(model, processor, samples: list[Sample], options: CollateOptions, batch_size: int = 8) -> float:
    """Mean loss per answer token (assistant-only labels), as in training; samples training would refuse (too
    long even when cut) are left out, as training leaves them out."""
    normalise_on_model(model, processor.image_processor)  # our batches carry uint8 pixels
    encoder = Encoder(processor, options)
    encoded = []
    for s in samples:
        try:
            encoded.append(encoder(s))
        except BadSample:
            continue
    total, tokens = 0.0, 0
    for start in range(0, len(encoded), batch_size):
        batch = collate(encoded[start:start + batch_size], processor.tokenizer.pad_token_id, options)
        batch = {k: v.to(model.device) for k, v in batch.items()}
        n = int((batch["labels"][:, 1:] != -100).sum())
        total += model(**batch).loss.item() * n
        tokens += n
    return total / max(1, tokens)


def mean_score(rows: list[dict], condition: str) -> tuple[float | None, int]:
    """(mean, count) over the rows scored in `condition`; None when none was."""
    values = [r["scores"][condition] for r in rows if r["scores"][condition] is not None]
    return (sum(values) / len(values) if values else None), len(values)


def score_model(model_dir: Path, samples: list[Sample], out: Path, options: CollateOptions, data: str, seed: int,
                metric: str | None = None, batch_size: int = 16, retention_check: bool = True,
                force: bool = False, thinking: bool = False) -> dict:
    """Samples must already be under the image policy of `options` (`image_use.under_policy`). Those that offer
    tools are scored for tool calling (`tool_use.py`), the others for their answers; with `thinking`, those are
    asked again in thinking mode."""
    from smvl.eval.tool_use import score_thinking, score_tool_use

    model, processor = load(model_dir)
    name = model_dir.resolve().name if model_dir.name != "final" else model_dir.resolve().parent.name
    cache = PredictionCache(out / f"predictions-{name}.jsonl", force=force)
    identity = [model_identity(model_dir), data, seed]
    tooled = [s for s in samples if s.tools]
    everything, samples = samples, [s for s in samples if not s.tools]
    answers, partners = predict(model, processor, samples, cache, identity, batch_size, seed)
    rows = []
    for i, s in enumerate(samples):
        prompt, ref, _ = first_question(s)
        q, subset = text_of(prompt[-1]), subset_of(s)
        fn = metric_for(subset, metric)
        row = {"id": s.id, "subset": subset, "question": q, "reference": ref, "metric": fn.name,
               "shuffled_from": samples[partners[i]].id if partners[i] is not None else None}
        row.update({c: answers.get((i, c)) for c in CONDITIONS})
        row["scores"] = {c: fn(row[c], [ref], q) if row[c] is not None else None for c in CONDITIONS}
        rows.append(row)
    # frozen frames only where some question shows a video: an image-only report stays as it was
    conditions = [c for c in CONDITIONS if c != "frozen_frames" or any(s.videos for s in samples)]
    per_subset = {}
    for subset in sorted({r["subset"] for r in rows}):
        of_subset = [r for r in rows if r["subset"] == subset]
        means = {c: mean_score(of_subset, c) for c in conditions}
        per_subset[subset] = {"metric": of_subset[0]["metric"], "n": len(of_subset),
                              "scored": {c: k for c, (_, k) in means.items()}, **{c: m for c, (m, _) in means.items()}}
    kinds = [question_kind(s) for s in samples]
    by_kind = {kind: {c: mean_score([r for r, k in zip(rows, kinds) if k == kind], c)[0] for c in conditions}
               for kind in sorted(set(kinds))}
    overall = {c: mean_score(rows, c) for c in conditions}
    result = {
        "model": str(model_dir), "name": name, "n": len(samples),
        **{f"accuracy_{c}": m for c, (m, _) in overall.items()}, "scored": {c: k for c, (_, k) in overall.items()},
        "majority_baseline": majority_baseline(kinds, [r["reference"] for r in rows], normalize_answer),
        "accuracy_by_question_type": by_kind,
        "eval_loss": eval_loss(model, processor, everything, options), "per_subset": per_subset, "predictions": rows,
    }
    if tooled:
        result["tool_use"] = score_tool_use(model, processor, tooled, cache, identity, batch_size)
    if thinking and samples:
        result["thinking"] = score_thinking(model, processor, samples, cache, identity, batch_size)
    if retention_check:
        from smvl.eval.retention import load_source_llm, retention

        llm, source = load_source_llm(model_dir)
        result["retention"] = retention(model, processor, llm) if llm is not None else {"skipped": source}
    return result
