"""VQA metrics, each `metric(prediction, references, question=None, **options) -> float in [0, 1]`, and which
subset of the_cauldron uses which.

`question` is always the third positional argument (`smvl eval` calls `fn(pred, [ref], question)`), so the
metric-specific knobs (threshold, tolerance, options, leave_one_out) are keyword-only. A reference list may be a
single string.

| metric | subsets | rule |
| --- | --- | --- |
| exact | synthetic, cocoqa, vsr, tallyqa, ocrvqa, clevr, nlvr2, vqarad, ..., default | normalised answers equal |
| vqa | vqav2, okvqa, textvqa, vizwiz (10 human answers in the source) | min(#refs equal / 3, 1) |
| anls | docvqa, infographic_vqa, st_vqa, visualmrc, textcaps, iam, rendered_text | 1 - NL if NL < 0.5 else 0 |
| relaxed | chartqa, plotqa, dvqa, figureqa, tabmwp, table/finance QA, clevr_math, geomverse | 5% relative |
| choice | ai2d, scienceqa, tqa, iconqa, aokvqa, mapqa, visual7w, intergps, raven | option letters equal |

Where a subset's format is uncertain the more lenient metric is chosen when it reduces to exact match otherwise:
`relaxed` on non-numbers and `choice` on references that name no letter both fall back to exact match.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from typing import NamedTuple

from smvl.eval.normalize import normalize_answer

METRIC_BY_SUBSET = {
    **dict.fromkeys(["synthetic", "cocoqa", "vsr", "tallyqa", "ocrvqa", "clevr", "nlvr2", "vqarad", "mimic_cgd",
                     "hateful_memes"], "exact"),
    **dict.fromkeys(["vqav2", "okvqa", "textvqa", "vizwiz"], "vqa"),
    **dict.fromkeys(["docvqa", "infographic_vqa", "st_vqa", "visualmrc", "textcaps", "iam", "rendered_text"], "anls"),
    **dict.fromkeys(["chartqa", "plotqa", "dvqa", "figureqa", "tabmwp", "tat_qa", "finqa", "hitab", "multihiertt",
                     "robut_wtq", "robut_sqa", "robut_wikisql", "clevr_math", "geomverse"], "relaxed"),
    **dict.fromkeys(["ai2d", "scienceqa", "tqa", "iconqa", "aokvqa", "mapqa", "visual7w", "intergps", "raven"],
                    "choice"),
}


def _refs(refs: str | list[str]) -> list[str]:
    return [refs] if isinstance(refs, str) else list(refs)


def exact_match(pred: str, refs: str | list[str], question: str | None = None) -> float:
    """1.0 if the normalised prediction equals any normalised reference."""
    p = normalize_answer(pred, question)
    return float(any(p == normalize_answer(r, question) for r in _refs(refs)))


def vqa_accuracy(pred: str, refs: str | list[str], question: str | None = None, *,
                 leave_one_out: bool = False) -> float:
    """VQAv2 soft accuracy min(#matching refs / 3, 1); `leave_one_out` averages over the n choose n-1 subsets.

    The divisor is min(3, #refs): the_cauldron keeps one answer per question, and 1/3 for a perfect answer would
    be nonsense; with one reference this is exact match. leave_one_out=True is the official VQAv2 averaging
    (3 of 10 agreeing -> 0.9); the default is the plain formula (2 of 10 -> 2/3).
    """
    refs = _refs(refs)
    p = normalize_answer(pred, question)
    hits = [p == normalize_answer(r, question) for r in refs]
    if leave_one_out and len(refs) > 1:
        return sum(min((sum(hits) - h) / min(3, len(refs) - 1), 1.0) for h in hits) / len(refs)
    return min(sum(hits) / min(3, len(refs)), 1.0) if refs else 0.0


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert, delete, substitute: cost 1 each), two rows of the usual table."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _anls_clean(text: str) -> str:
    # The official ANLS only lower-cases and collapses spaces; NFKC and dropping one final full stop (the_cauldron
    # ends answers with one, a model may not) remove differences no reader would count as an error.
    text = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    return text[:-1].rstrip() if text.endswith((".", "。")) else text


def anls(pred: str, refs: str | list[str], question: str | None = None, *, threshold: float = 0.5) -> float:
    """DocVQA ANLS: max over references of 1 - NL, where NL = Levenshtein / longer length; 0 when NL >= threshold."""
    p, best = _anls_clean(pred), 0.0
    for r in map(_anls_clean, _refs(refs)):
        nl = levenshtein(p, r) / max(len(p), len(r)) if p or r else 0.0
        best = max(best, 1.0 - nl if nl < threshold else 0.0)
    return best


NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?%?")


def _numbers(text: str, question: str | None) -> list[float] | None:
    """The values a numeric answer may mean ("12%" -> [0.12, 12]); None if it is not a number."""
    raw = unicodedata.normalize("NFKC", text).strip().lower().rstrip(".。").strip()
    raw = re.sub(r"(?<=\d),(?=\d)|[\s$¥€£]", "", raw)
    if not NUMBER.fullmatch(raw):
        raw = normalize_answer(text, question)  # "三个" -> "3", "twenty" -> "20"
        if not NUMBER.fullmatch(raw):
            return None
    value = float(raw.rstrip("%"))
    # A percent answer counts as either scale: charts label "12%" where the reference says 12 or 0.12.
    values = [value / 100, value] if raw.endswith("%") else [value]
    return [v for v in values if math.isfinite(v)] or None


def relaxed_accuracy(pred: str, refs: str | list[str], question: str | None = None, *,
                     tolerance: float = 0.05) -> float:
    """ChartQA relaxed accuracy: numbers within `tolerance` relative error (inclusive), others exact match."""
    p = _numbers(pred, question)
    for r in _refs(refs):
        t = _numbers(r, question)
        if p is not None and t is not None:
            # 1e-9 absorbs float error so that exactly 5% (1.05 vs 1) is in; a zero target needs equality.
            if any(a == b if b == 0 else abs(a - b) / abs(b) <= tolerance + 1e-9 for a in p for b in t):
                return 1.0
        elif exact_match(pred, [r], question):
            return 1.0
    return 0.0


LETTERS = "ABCDEFGH"
_OPEN, _CLOSE = r"[(（\[]", r"[)）\].．:：、]"
WHOLE_LETTER = re.compile(rf"\s*{_OPEN}?\s*([A-Ha-h])\s*[)）\]]?\s*[.．:：、]?\s*")
CUE_LETTER = re.compile(rf"(?i:answer|option|choice|答案|选项|选择|选)\s*(?:is|是|为)?\s*[:：]?\s*{_OPEN}?\s*"
                        r"([A-H])(?![A-Za-z0-9])")
LEADING_LETTER = re.compile(rf"\s*{_OPEN}?([A-H]){_CLOSE}")
LONE_LETTER = re.compile(r"(?<![A-Za-z0-9])([A-H])(?![A-Za-z0-9])")
ARTICLE_A = re.compile(r"(?<![A-Za-z0-9])A\s+[a-z]")  # "A cat": an article, not option A
OPTION_LINE = re.compile(rf"^\s*{_OPEN}?([A-H]){_CLOSE}\s*(.+?)\s*$", re.MULTILINE)


def parse_options(question: str | None) -> dict[str, str]:
    """Options listed one per line in the question ("A. cat", "(B) dog", "C: bird") -> {letter: text}."""
    return {m.group(1): m.group(2) for m in OPTION_LINE.finditer(question or "")}


def choice_letter(text: str, options: list[str] | dict[str, str] | None = None) -> str | None:
    """The option letter a prediction names ("B", "(B)", "B.", "答案是B", "The answer is B", "Answer: B"), or the
    letter of the option whose text it gives; None when it names none or is ambiguous."""
    opts = dict(zip(LETTERS, options)) if isinstance(options, (list, tuple)) else dict(options or {})
    if m := WHOLE_LETTER.fullmatch(text):
        return m.group(1).upper()
    norm = normalize_answer(text)
    by_text = [k for k, v in opts.items() if normalize_answer(v) == norm]
    if len(by_text) == 1:
        return by_text[0]
    if m := CUE_LETTER.search(text) or LEADING_LETTER.match(text):
        return m.group(1)
    # The option text inside a longer answer ("I think it is a cat"), when exactly one option fits.
    inside = [k for k, v in opts.items() if normalize_answer(v) and f" {normalize_answer(v)} " in f" {norm} "]
    if len(inside) == 1:
        return inside[0]
    lone = set(LONE_LETTER.findall(text))  # a single capital letter standing alone, and only one such
    return lone.pop() if len(lone) == 1 and not (lone == {"A"} and ARTICLE_A.search(text)) else None


def multiple_choice_accuracy(pred: str, refs: str | list[str], question: str | None = None, *,
                             options: list[str] | dict[str, str] | None = None) -> float:
    """1.0 if prediction and a reference name the same option letter; options default to those listed in the
    question; where either side names no letter, exact match on the text."""
    options = options if options is not None else parse_options(question)
    p = choice_letter(pred, options)
    for r in _refs(refs):
        t = choice_letter(r, options)
        if (p == t) if p is not None and t is not None else exact_match(pred, [r], question):
            return 1.0
    return 0.0


METRICS: dict[str, Callable[..., float]] = {
    "exact": exact_match, "vqa": vqa_accuracy, "anls": anls, "relaxed": relaxed_accuracy,
    "choice": multiple_choice_accuracy,
}
ALIASES = {"exact_match": "exact", "vqa_accuracy": "vqa", "relaxed_accuracy": "relaxed", "multiple_choice": "choice",
           "multiple_choice_accuracy": "choice", "mc": "choice"}


class Metric(NamedTuple):
    """A metric that is callable and also unpacks as `(name, fn)` (what `smvl eval` expects)."""

    name: str
    fn: Callable[..., float]

    def __call__(self, pred: str, refs: str | list[str], question: str | None = None, **options) -> float:
        return self.fn(pred, refs, question, **options)


def metric_for(subset: str, override: str | None = None) -> Metric:
    """The metric for a the_cauldron subset (default exact), or the one `override` names."""
    name = override or METRIC_BY_SUBSET.get((subset or "").strip().lower(), "exact")
    name = ALIASES.get(name, name)
    if name not in METRICS:
        raise ValueError(f"unknown metric {override!r}; choose one of {', '.join(METRICS)}")
    return Metric(name, METRICS[name])


def score(pred: str, refs: str | list[str], metric_name: str, question: str | None = None, **options) -> float:
    """`pred` against `refs` with the metric called `metric_name`."""
    return metric_for("", metric_name)(pred, refs, question, **options)
