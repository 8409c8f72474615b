"""VQA metrics, each `metric(prediction, references, question=None) -> float in [0, 1]`, and which subset uses which.

| metric | used for | rule |
| --- | --- | --- |
| exact | synthetic, default | normalised prediction equals a normalised reference |
| vqa | vqav2, cocoqa, textvqa, okvqa, vizwiz, vsr, visual7w, tallyqa, ... | min(#references equal / 3, 1) (references that repeat count as several annotators) |
| anls | docvqa, infographic_vqa, st_vqa | max over references of 1 - Levenshtein / max length, 0 below 0.5 |
| relaxed | chartqa, plotqa, dvqa, figureqa | numbers within 5% relative error; otherwise exact |
| choice | ai2d, scienceqa, tqa, iconqa, aokvqa, mapqa | the option letter extracted from the prediction equals the reference's |
"""

from __future__ import annotations

import re
import unicodedata

from smvl.eval.normalize import normalize_answer

METRIC_BY_SUBSET = {
    **dict.fromkeys(["vqav2", "cocoqa", "textvqa", "okvqa", "vizwiz", "vsr", "visual7w", "tallyqa", "ocrvqa",
                     "vqarad", "hitab", "localized_narratives"], "vqa"),
    **dict.fromkeys(["docvqa", "infographic_vqa", "st_vqa", "textcaps"], "anls"),
    **dict.fromkeys(["chartqa", "plotqa", "dvqa", "figureqa", "tabmwp"], "relaxed"),
    **dict.fromkeys(["ai2d", "scienceqa", "tqa", "iconqa", "aokvqa", "mapqa"], "choice"),
    "synthetic": "exact",
}


def exact(pred: str, refs: list[str], question: str | None = None) -> float:
    p = normalize_answer(pred, question)
    return float(any(p == normalize_answer(r, question) for r in refs))


def vqa(pred: str, refs: list[str], question: str | None = None) -> float:
    p = normalize_answer(pred, question)
    return min(sum(p == normalize_answer(r, question) for r in refs) / 3, 1.0)


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def anls(pred: str, refs: list[str], question: str | None = None, threshold: float = 0.5) -> float:
    p = " ".join(pred.lower().split())
    best = 0.0
    for r in refs:
        r = " ".join(r.lower().split())
        similarity = 1 - levenshtein(p, r) / max(len(p), len(r), 1)
        best = max(best, similarity if similarity >= threshold else 0.0)
    return best


def _as_number(text: str) -> float | None:
    text = unicodedata.normalize("NFKC", text).strip().rstrip(".").replace(",", "").replace(" ", "")
    percent = text.endswith("%")
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        return None
    return value / 100 if percent else value


def relaxed(pred: str, refs: list[str], question: str | None = None, tolerance: float = 0.05) -> float:
    p = _as_number(pred)
    for r in refs:
        target = _as_number(r)
        if p is not None and target is not None:
            if (p == target) if target == 0 else abs(p - target) / abs(target) <= tolerance + 1e-12:
                return 1.0
        elif normalize_answer(pred, question) == normalize_answer(r, question):
            return 1.0
    return 0.0


# A capital option letter at the start, or after "answer is" / 答案是 / 选项, alone or bracketed or followed by . : )
LETTER = re.compile(r"(?:^|答案是|答案|answer is|option|选项)\s*[(（]?([A-H])(?:[)）.．:：\s]|$)")


def choice_letter(text: str, options: list[str] | None = None) -> str | None:
    """The option letter a prediction names; the option's own text counts too when `options` are given."""
    text = text.strip()
    if options:
        norm = normalize_answer(text)
        for i, option in enumerate(options):
            if normalize_answer(option) == norm:
                return "ABCDEFGH"[i]
    match = LETTER.search(text)
    return match.group(1) if match else None


def choice(pred: str, refs: list[str], question: str | None = None, options: list[str] | None = None) -> float:
    letter = choice_letter(pred, options)
    return float(letter is not None and any(choice_letter(r, options) == letter for r in refs))


METRICS = {"exact": exact, "vqa": vqa, "anls": anls, "relaxed": relaxed, "choice": choice}


def metric_for(subset: str, override: str | None = None):
    name = override or METRIC_BY_SUBSET.get(subset, "exact")
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}")
    return name, METRICS[name]
