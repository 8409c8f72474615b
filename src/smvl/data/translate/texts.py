"""Which texts of a sample go to the translator, and the ones answered without it."""

from __future__ import annotations

import re

from smvl.data.samples.sample import Sample, text_of

# Consistent in every subset whose answers are translated, and never worth a request.
YES_NO = {"yes": "是", "no": "否"}
WORD = re.compile(r"[A-Za-z]{2,}")


def fixed_translation(text: str) -> str | None:
    """The translation of a text that needs no translator: yes/no, or nothing but letters-as-labels, numbers,
    units-free symbols ("B", "12.5", "(C)", "3/4"); None when the translator is needed."""
    if _is_yes_no(text):
        return YES_NO[text.strip().rstrip(".!").strip().lower()]
    if not WORD.search(text):
        return text
    return None


def texts_to_translate(sample: Sample, mode: str) -> list[tuple[int, str]]:
    """(message index, text) of every turn `mode` translates: every turn for "both"; for "question" the user turns
    only. A "question" subset's answers are what the image says (a sign reading "YES", a cell holding "No"), so
    they stay verbatim, yes/no included."""
    if mode == "keep":
        return []
    chosen = []
    for i, m in enumerate(sample.messages):
        text = text_of(m)
        if not text.strip():
            continue
        if m["role"] != "assistant" or mode == "both":
            chosen.append((i, text))
    return chosen


def _is_yes_no(text: str) -> bool:
    return text.strip().rstrip(".!").strip().lower() in YES_NO


def with_translations(sample: Sample, translated: dict[int, str]) -> list[dict]:
    """The sample's messages with message i's text replaced by translated[i], every content a list of parts (a
    string holding "<image>" would read as an image marker); image parts stay ahead of the text, where they were."""
    messages = []
    for i, m in enumerate(sample.messages):
        content = m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]
        if i in translated:
            content = [p for p in content if p.get("type") == "image"] + [{"type": "text", "text": translated[i]}]
        messages.append({"role": m["role"], "content": content})
    return messages
