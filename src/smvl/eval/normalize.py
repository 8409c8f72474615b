"""Answer normalisation for Chinese and English VQA answers.

Steps: NFKC (full-width -> half-width: "ＡＢＣ１２３" -> "abc123", "，" -> ","), lower case, punctuation removed
(ASCII and CJK), English articles dropped, English number words and Chinese numerals to digits (十二 -> 12,
两个 -> 2: a count with a measure word becomes its number), and yes/no: 是/是的/对/有/正确 -> yes and
不是/否/不对/没有/错误/不 -> no when the whole answer is such a word (English yes/no stay as they are), so a
Chinese answer to a yes/no question matches an English reference and the other way round.
"""

from __future__ import annotations

import re
import string
import unicodedata

PUNCTUATION = set(string.punctuation) | set("，。？！、：；“”‘’（）《》【】…—·「」『』〈〉～")
ARTICLES = {"a", "an", "the"}
ENGLISH_NUMBERS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
ENGLISH_NUMBERS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70",
                        "eighty": "80", "ninety": "90", "hundred": "100"})
DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
MEASURE_WORDS = "个只条张辆位本件头匹块次岁人"
YES = {"是", "是的", "对", "对的", "有", "正确", "yes"}
NO = {"不是", "否", "不对", "没有", "错误", "不", "no"}
CHINESE_NUMBER = re.compile(f"^([零〇一二两三四五六七八九十百千万]+|\\d+)[{MEASURE_WORDS}]?$")


def chinese_to_number(text: str) -> int | None:
    """'三' -> 3, '十二' -> 12, '二十' -> 20, '一百零五' -> 105, '两' -> 2; None if `text` is not a numeral."""
    if not text or any(ch not in DIGITS and ch not in UNITS for ch in text):
        return None
    total, section, digit = 0, 0, None
    for ch in text:
        if ch in DIGITS:
            digit = DIGITS[ch]
        else:
            unit = UNITS[ch]
            if unit == 10000:
                total += (section + (digit or 0)) * unit
                section, digit = 0, None
            else:
                section += (1 if digit is None else digit) * unit
                digit = None
    return total + section + (digit or 0)


def _number(word: str) -> str:
    match = CHINESE_NUMBER.match(word)
    if match:
        core = match.group(1)
        value = int(core) if core.isdigit() else chinese_to_number(core)
        if value is not None:
            return str(value)
    return ENGLISH_NUMBERS.get(word, word)


def normalize_answer(text: str, question: str | None = None) -> str:
    text = unicodedata.normalize("NFKC", str(text)).lower().strip()
    text = "".join(" " if ch in PUNCTUATION else ch for ch in text)
    words = [w for w in text.split() if w not in ARTICLES]
    joined = "".join(words) if all(_is_cjk(w) for w in words) else " ".join(words)
    if joined in YES:
        return "yes"
    if joined in NO:
        return "no"
    return " ".join(_number(w) for w in joined.split())


def _is_cjk(word: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in word)
