"""Answer normalisation (placeholder until the full Chinese/English rules land)."""

from __future__ import annotations

import string
import unicodedata

PUNCT = set(string.punctuation) | set("，。？！、：；“”‘’（）《》【】…")


def normalize_answer(text: str, question: str | None = None) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join("".join(ch for ch in text if ch not in PUNCT).split())
