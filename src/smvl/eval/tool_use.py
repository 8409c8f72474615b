"""Does the model still call tools and think? Tool-call and thinking-mode scores, each beside the blank-image control.

Tool calling is scored on the held-out samples that offer tools: the first assistant turn is the reference, and the
model is asked with the sample's tools rendered by its template, as a server asks it. Per sample:
- a call expected: the right tools (names, in order) and the calls exact (arguments equal as JSON objects);
- no call expected: answered directly (no `<tool_call>` at all), and the answer right (normalised, as `exact`);
- every `<tool_call>` block the model opens is valid JSON naming a tool with object arguments (`valid_json`).

Thinking mode asks the plain questions again with `enable_thinking`: the answer is what follows `</think>` and is
scored as the no-thinking answer is; the trace's length (tokens) and the share of answers that close their trace
are reported with it.
"""

from __future__ import annotations

import json

from smvl.data.samples.sample import Sample, text_of
from smvl.eval.cache import PredictionCache, digest
from smvl.eval.image_use import blank_like, first_turn
from smvl.eval.normalize import normalize_answer
from smvl.eval.shuffle import image_key
from smvl.infer.generate import generate_batch, split_thinking
from smvl.infer.tool_calls import OPEN, parse_tool_calls

TOOL_CONDITIONS = ("with_images", "blank_images")
TOOL_TOKENS = 96  # a call with three Chinese arguments, or a short answer
THINKING_TOKENS = 160  # a trace over a four-object scene, then the answer


def expected_calls(turn: dict) -> list[tuple[str, dict]]:
    return [(c["function"]["name"], c["function"]["arguments"]) for c in turn.get("tool_calls") or []]


def score_tool_answer(text: str, turn: dict) -> dict:
    """One generated answer against the reference turn (see the module docstring)."""
    parsed = parse_tool_calls(text)
    called = [(c.name, json.loads(c.arguments)) for c in parsed.calls]
    opened = text.count(OPEN)
    row = {"calls": called, "content": parsed.content, "valid_json": len(called) == opened if opened else None}
    expected = expected_calls(turn)
    if expected:
        row["right_tool"] = [n for n, _ in called] == [n for n, _ in expected]
        row["exact"] = called == expected
    else:
        row["direct"] = not opened
        row["correct"] = not opened and normalize_answer(parsed.content or "") == normalize_answer(text_of(turn))
    return row


def _mean(rows: list[dict], field: str) -> float | None:
    values = [r[field] for r in rows if r.get(field) is not None]
    return sum(values) / len(values) if values else None


def _generate(model, processor, samples, cache, identity, condition, thinking, tokens, batch_size) -> list[str]:
    """Answers to each sample's first question under `condition`, generating only what `cache` lacks."""
    prompts = [first_turn(s)[0] for s in samples]
    keys = [digest(*identity, s.source, s.id, f"{'thinking' if thinking else 'tools'}:{condition}",
                   json.dumps([p, s.tools], ensure_ascii=False, default=str), image_key(s.images), tokens)
            for s, p in zip(samples, prompts)]
    todo = [i for i, key in enumerate(keys) if key not in cache]
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        images = [samples[i].images if condition == "with_images" else blank_like(samples[i].images) for i in chunk]
        answers = generate_batch(model, processor, [prompts[i] for i in chunk], images, thinking=thinking,
                                 tools=[samples[i].tools for i in chunk], max_new_tokens=tokens)
        cache.add([{"key": keys[i], "id": samples[i].id, "condition": condition, "answer": a}
                   for i, a in zip(chunk, answers)])
    return [cache[key] for key in keys]


def score_tool_use(model, processor, samples: list[Sample], cache: PredictionCache, identity: list,
                   batch_size: int = 16) -> dict:
    """Tool-call scores of the samples that offer tools, per condition, with every prediction."""
    turns = [first_turn(s)[1] for s in samples]
    result = {"n": len(samples), "calls_expected": sum(bool(expected_calls(t)) for t in turns)}
    rows = [{"id": s.id, "source": s.source, "reference": expected_calls(t) or text_of(t)}
            for s, t in zip(samples, turns)]
    for condition in TOOL_CONDITIONS:
        answers = _generate(model, processor, samples, cache, identity, condition, False, TOOL_TOKENS, batch_size)
        scored = [score_tool_answer(a, t) for a, t in zip(answers, turns)]
        result[condition] = {"call_accuracy": _mean(scored, "exact"), "right_tool": _mean(scored, "right_tool"),
                             "answered_directly": _mean(scored, "direct"),
                             "direct_accuracy": _mean(scored, "correct"), "valid_json": _mean(scored, "valid_json")}
        for row, a, score in zip(rows, answers, scored):
            row[condition] = {"answer": a, **{f: score.get(f) for f in ("exact", "right_tool", "direct", "correct",
                                                                        "valid_json")}}
    result["predictions"] = rows
    return result


def score_thinking(model, processor, samples: list[Sample], cache: PredictionCache, identity: list,
                   batch_size: int = 16) -> dict:
    """The plain questions answered in thinking mode: accuracy of the answer after the trace, per condition."""
    result = {"n": len(samples)}
    references = [normalize_answer(text_of(first_turn(s)[1])) for s in samples]
    for condition in TOOL_CONDITIONS:
        answers = _generate(model, processor, samples, cache, identity, condition, True, THINKING_TOKENS,
                            batch_size)
        split = [split_thinking(a) for a in answers]
        lengths = [len(processor.tokenizer(trace, add_special_tokens=False)["input_ids"]) for trace, _ in split]
        result[condition] = {
            "accuracy": sum(normalize_answer(answer) == ref for (_, answer), ref in zip(split, references))
            / max(1, len(samples)),
            "closed_trace": sum("</think>" in a for a in answers) / max(1, len(samples)),
            "mean_trace_tokens": sum(lengths) / max(1, len(lengths)),
        }
    return result
