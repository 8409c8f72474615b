"""Is a translation usable? Each check names the reason a rejected text is counted under.

The checks look for what a translation must carry over from its source (option letters, numbers), that it is
Chinese, of a plausible length, and not a refusal; garbage from a broken endpoint fails at least one of them.
"""

from __future__ import annotations

import re

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN = re.compile(r"[A-Za-z]")
MIN_CHINESE_SHARE = 0.4  # han / (han + latin letters): names, units and formulas may stay latin, not the sentence
# Chinese takes about 0.3-0.6 characters per English one; past these bounds it is a fragment or a rambling answer.
MIN_LENGTH_RATIO, MAX_LENGTH_RATIO = 0.1, 2.5
MIN_LENGTH_FOR_RATIO = 16  # "Is it red?" -> "是红色吗？" is 0.5; shorter sources vary too much to judge
# An option marker at the start of a line ("A.", "B)", "(C)", "D:") or a parenthesised letter anywhere.
OPTION = re.compile(r"(?m)^\s*\(?([A-H])[.):：]|\(([A-H])\)")
# A letter given as the answer: "Answer: B", "The answer is (C)", "option D".
ANSWER_LETTER = re.compile(r"(?i:answer|option|choice)(?:\s+is)?\s*[:：]?\s*\(?([A-H])\b")
# A capital letter standing alone ("B is correct", "figure C", "答案：D"), not in a word or a unit ("°C").
LETTER = re.compile(r"(?<![A-Za-z°])[A-H](?![A-Za-z])")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
REFUSAL = re.compile(r"(?i)\b(?:I'?m sorry|I am sorry|I cannot|I can't|as an AI|language model|I'm unable|"
                     r"translation:)|抱歉|对不起|我无法|我不能|作为一个?(?:AI|人工智能)|翻译如下")


def option_letters(text: str) -> list[str]:
    return [a or b for a, b in OPTION.findall(text)]


def letters(text: str) -> set[str]:
    return set(LETTER.findall(text))


def numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in NUMBER.findall(text)}


def chinese_share(text: str) -> float:
    han, latin = len(HAN.findall(text)), len(LATIN.findall(text))
    return han / (han + latin) if han + latin else 0.0


def rejection(source: str, translation: str | None) -> str | None:
    """None when `translation` is usable for `source`, else the reason."""
    if translation is None or not translation.strip():
        return "empty translation"
    if REFUSAL.search(translation) and not REFUSAL.search(source):
        return "refusal or commentary"
    if chinese_share(translation) < MIN_CHINESE_SHARE:
        return "not Chinese"
    if option_letters(source) != option_letters(translation):
        return "option letters lost"
    for letter in ANSWER_LETTER.findall(source):
        if not re.search(rf"(?<![A-Za-z]){letter}(?![A-Za-z])", translation):
            return "option letters lost"
    # A text naming letters must not name others once translated: B -> C is a wrong answer that keeps a letter.
    # Texts naming none are not judged: "25 degrees" may fairly become "25°C".
    named = letters(source)
    if named and letters(translation) - named:
        return "option letters changed"
    if not numbers(source) <= numbers(translation):
        return "numbers lost"
    if len(source) >= MIN_LENGTH_FOR_RATIO:
        ratio = len(translation) / len(source)
        if not MIN_LENGTH_RATIO <= ratio <= MAX_LENGTH_RATIO:
            return "length ratio"
    return None
