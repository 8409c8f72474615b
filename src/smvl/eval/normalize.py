"""Answer normalisation for Chinese and English VQA answers, so "三个。" and "3" or "是的" and "Yes." compare equal.

Steps, in order:
1. NFKC (full-width -> half-width: "ＡＢＣ１２３" -> "abc123", "？" -> "?"), lower case.
2. Punctuation (ASCII and all Unicode P* characters: ，。？！、：；“”‘’（）《》【】…) becomes a space, except that a
   decimal point between digits is kept ("3.5") and a thousands comma is dropped ("1,000" -> "1000"); apostrophes
   vanish ("dog's" -> "dogs"). Whitespace collapses; spaces between CJK characters (or CJK and a digit) go, since
   Chinese does not use them ("红 色" -> "红色", "3 个" -> "3个").
3. English articles a/an/the are dropped; English number words become digits ("twenty-one" -> "21",
   "two hundred" -> "200").
4. Whole-answer rules (only when the entire normalised answer is the word, never inside a longer answer):
   - count question ("几", "多少", "how many", "number of") answered 没有/没/无/none -> "0";
   - Chinese yes/no: 是/是的/对/对的/有/正确 -> "yes", 不是/否/不对/没有/错误/不 (and 没/错/不正确) -> "no".
     The brief's rule "only where the question or the answer is Chinese" always holds here: every mapped word is
     itself Chinese, so the answer is. English "yes"/"no" stay as they are;
   - a count: a Chinese numeral or digits, optionally with one measure word -> digits ("两只" -> "2", "十二" -> "12").
"""

from __future__ import annotations

import re
import string
import unicodedata

ARTICLES = {"a", "an", "the"}
SMALL = {w: i for i, w in enumerate([
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"])}
TENS = {w: 10 * i for i, w in enumerate(
    ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], 2)}
DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
UNITS = {"十": 10, "百": 100, "千": 1000}
BIG_UNITS = {"万": 10_000, "亿": 100_000_000}
MEASURE_WORDS = "个只条张辆位本件头匹块次岁人台把根支棵朵颗座间层双对片杯瓶"
YES = {"是", "是的", "对", "对的", "有", "正确", "yes"}
NO = {"不是", "否", "不对", "没有", "错误", "不", "没", "错", "不正确", "no"}
NONE_ANSWERS = {"没有", "没", "无", "none"}
COUNT_QUESTION = re.compile(r"几|多少|how many|number of", re.IGNORECASE)
_NUMERAL = "零〇一二两三四五六七八九十百千万亿"
COUNT = re.compile(f"^([{_NUMERAL}]+|\\d+)[{MEASURE_WORDS}]?$")
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_GAP = re.compile(f"(?<=[{_CJK}])\\s+(?=[{_CJK}\\d])|(?<=\\d)\\s+(?=[{_CJK}])")
THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
APOSTROPHES = re.compile(r"['’‘`]")
LONE_DOT = re.compile(r"(?<!\d)\.|\.(?!\d)")  # a dot that is not a decimal point


def chinese_to_number(text: str) -> int | None:
    """'三' -> 3, '十二' -> 12, '二十' -> 20, '一百零五' -> 105, '两' -> 2, '二〇二四' -> 2024; None if not a numeral."""
    text = (text or "").strip()
    if text.isascii() and text.isdigit():
        return int(text)
    if not text or any(ch not in DIGITS and ch not in UNITS and ch not in BIG_UNITS for ch in text):
        return None
    if not any(ch in UNITS or ch in BIG_UNITS for ch in text):
        # No 十/百/千: read digit by digit, as years and phone numbers are written ("二〇二四" -> 2024).
        return int("".join(str(DIGITS[ch]) for ch in text))
    total, section, digit = 0, 0, None
    for ch in text:
        if ch in DIGITS:
            digit = DIGITS[ch]
        elif ch in UNITS:
            section += (1 if digit is None else digit) * UNITS[ch]  # a bare 十 means 一十
            digit = None
        elif BIG_UNITS[ch] > 10_000:  # 亿 multiplies everything before it (一亿两千万: 亿 then 万)
            total = (total + section + (digit or 0)) * BIG_UNITS[ch]
            section, digit = 0, None
        else:
            total += (section + (digit or 0)) * BIG_UNITS[ch]
            section, digit = 0, None
    return total + section + (digit or 0)


def _english_numbers(words: list[str]) -> list[str]:
    """Runs of English number words -> one digit string: "twenty one" -> "21", "three hundred five" -> "305"."""
    out, i, n = [], 0, len(words)
    while i < n:
        w = words[i]
        if w not in SMALL and w not in TENS and w != "hundred":
            out.append(w)
            i += 1
            continue
        hundreds = tail = 0
        if SMALL.get(w, 0) > 0 and i + 1 < n and words[i + 1] == "hundred":
            hundreds, i = SMALL[w] * 100, i + 2
        elif w == "hundred":
            hundreds, i = 100, i + 1
        if hundreds and i + 1 < n and words[i] == "and" and (words[i + 1] in TENS or SMALL.get(words[i + 1], 0)):
            i += 1  # "two hundred and five"
        if i < n and words[i] in TENS:
            tail, i = TENS[words[i]], i + 1
            if i < n and 0 < SMALL.get(words[i], 0) < 10:
                tail, i = tail + SMALL[words[i]], i + 1
        elif i < n and words[i] in SMALL and not (hundreds and words[i] == "zero"):
            tail, i = SMALL[words[i]], i + 1
        out.append(str(hundreds + tail))
    return out


def _strip_punctuation(text: str) -> str:
    text = THOUSANDS.sub("", APOSTROPHES.sub("", text))
    text = LONE_DOT.sub(" ", text)
    return "".join(" " if ch != "." and (ch in string.punctuation or unicodedata.category(ch).startswith("P"))
                   else ch for ch in text)


def normalize_answer(text: str, question: str | None = None) -> str:
    """The comparable form of an answer; `question` only decides whether 没有 means 0 (count) or no."""
    text = unicodedata.normalize("NFKC", str(text))
    # Lower-casing can produce characters NFKC would fold again (e.g. "İ"); fold twice so the result is stable.
    text = unicodedata.normalize("NFKC", text.lower()).lower()
    words = [w for w in _strip_punctuation(text).split() if w not in ARTICLES]
    answer = CJK_GAP.sub("", " ".join(_english_numbers(words)))
    if answer in NONE_ANSWERS and question and COUNT_QUESTION.search(question):
        return "0"
    if answer in YES:
        return "yes"
    if answer in NO:
        return "no"
    match = COUNT.match(answer)
    if match:
        value = int(match.group(1)) if match.group(1).isdigit() else chinese_to_number(match.group(1))
        if value is not None:
            return str(value)
    return answer
