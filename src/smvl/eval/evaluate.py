"""`smvl eval`: answers with real, blank and shuffled images, metrics per subset, eval loss, text retention.

Predictions are appended to `<out>/predictions-<model>.jsonl` as they are made, so a re-run resumes.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from smvl.data.collate import CollateOptions, Encoder, collate
from smvl.data.sample import Sample, text_of
from smvl.eval.image_use import blank_like, first_question, majority_baseline, question_kind
from smvl.eval.metrics import metric_for
from smvl.eval.normalize import normalize_answer
from smvl.infer.generate import generate_batch, load

CONDITIONS = ("with_images", "blank_images", "shuffled_images")


def subset_of(sample: Sample) -> str:
    return "synthetic" if sample.source.startswith("synthetic") else (sample.source or "data")


def predict(model, processor, samples: list[Sample], cache: Path, batch_size: int, seed: int) -> dict:
    """{(sample id, condition): answer}, generating only what `cache` does not hold yet."""
    done = {}
    if cache.is_file():
        for line in cache.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                done[(row["id"], row["condition"])] = row["answer"]
            except (json.JSONDecodeError, KeyError):
                continue
    prompts, images = [], []
    for s in samples:
        prompt, _, used = first_question(s)
        prompts.append(prompt)
        images.append(s.images[:used])
    shuffled = images[:]
    random.Random(seed).shuffle(shuffled)
    inputs = {"with_images": images, "blank_images": [blank_like(i) for i in images], "shuffled_images": shuffled}
    with open(cache, "a", encoding="utf-8") as out:
        for condition in CONDITIONS:
            todo = [i for i, s in enumerate(samples) if (s.id, condition) not in done]
            for start in range(0, len(todo), batch_size):
                chunk = todo[start:start + batch_size]
                answers = generate_batch(model, processor, [prompts[i] for i in chunk],
                                         [inputs[condition][i] for i in chunk], max_new_tokens=32)
                for i, answer in zip(chunk, answers):
                    done[(samples[i].id, condition)] = answer
                    out.write(json.dumps({"id": samples[i].id, "condition": condition, "answer": answer},
                                         ensure_ascii=False) + "\n")
                out.flush()
    return done


@torch.no_grad()
def eval_loss(model, processor, samples: list[Sample], batch_size: int = 8) -> float:
    """Mean loss per answer token (assistant-only labels), as in training."""
    encoder = Encoder(processor, CollateOptions())
    total, tokens = 0.0, 0
    for start in range(0, len(samples), batch_size):
        batch = collate([encoder(s) for s in samples[start:start + batch_size]], processor.tokenizer.pad_token_id,
                        encoder.options)
        batch = {k: v.to(model.device) for k, v in batch.items()}
        n = int((batch["labels"][:, 1:] != -100).sum())
        total += model(**batch).loss.item() * n
        tokens += n
    return total / max(1, tokens)


def score_model(model_dir: Path, samples: list[Sample], out: Path, metric: str | None, batch_size: int,
                seed: int, retention_check: bool) -> dict:
    model, processor = load(model_dir)
    name = model_dir.resolve().name if model_dir.name != "final" else model_dir.resolve().parent.name
    answers = predict(model, processor, samples, out / f"predictions-{name}.jsonl", batch_size, seed)
    refs = [first_question(s)[1] for s in samples]
    questions = [text_of(first_question(s)[0][-1]) for s in samples]
    per_subset: dict[str, dict] = {}
    rows = []
    for s, ref, q in zip(samples, refs, questions):
        subset = subset_of(s)
        metric_name, fn = metric_for(subset, metric)
        entry = per_subset.setdefault(subset, {"metric": metric_name, "n": 0, **dict.fromkeys(CONDITIONS, 0.0)})
        entry["n"] += 1
        row = {"id": s.id, "subset": subset, "question": q, "reference": ref}
        for condition in CONDITIONS:
            value = fn(answers[(s.id, condition)], [ref], q)
            entry[condition] += value
            row[condition] = answers[(s.id, condition)]
        rows.append(row)
    for entry in per_subset.values():
        for condition in CONDITIONS:
            entry[condition] /= entry["n"]
    overall = {c: sum(e[c] * e["n"] for e in per_subset.values()) / max(1, len(samples)) for c in CONDITIONS}
    kinds = [question_kind(s) for s in samples]
    by_kind = {}
    for kind in sorted(set(kinds)):
        rows_of_kind = [(r, q) for r, q, k in zip(rows, questions, kinds) if k == kind]
        by_kind[kind] = {c: sum(metric_for(r["subset"], metric)[1](r[c], [r["reference"]], q)
                                for r, q in rows_of_kind) / len(rows_of_kind) for c in CONDITIONS}
    result = {
        "model": str(model_dir), "name": name, "n": len(samples), **{f"accuracy_{k}": v for k, v in overall.items()},
        "majority_baseline": majority_baseline(kinds, refs, normalize_answer),
        "accuracy_by_question_type": by_kind,
        "eval_loss": eval_loss(model, processor, samples), "per_subset": per_subset, "predictions": rows,
    }
    if retention_check:
        from smvl.eval.retention import load_source_llm, retention

        llm, source = load_source_llm(model_dir)
        result["retention"] = retention(model, processor, llm) if llm is not None else {"skipped": source}
    return result
