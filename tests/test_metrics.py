"""Metrics against hand-computed cases, Chinese normalisation edge cases included."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smvl.eval.metrics import (
    METRIC_BY_SUBSET,
    METRICS,
    anls,
    choice_letter,
    exact_match,
    levenshtein,
    metric_for,
    multiple_choice_accuracy,
    parse_options,
    relaxed_accuracy,
    score,
    vqa_accuracy,
)
from smvl.eval.normalize import chinese_to_number, normalize_answer

ZH_COUNT = "图中有几只猫？"
ZH_YES_NO = "图中有猫吗？"


@pytest.mark.parametrize("a, b, question", [
    ("ＡＢＣ１２３", "abc123", None), ("Ｄｏｇ！", "dog", None), ("三", "3", ZH_COUNT), ("十二", "12", ZH_COUNT),
    ("二十", "20", None), ("一百零五", "105", None), ("两个", "2", ZH_COUNT), ("三个", "3", None), ("两只", "2", None),
    ("3 个", "3", None), ("〇", "0", None), ("零", "0", None), ("红色。", "红色", None), ("「红色」！", "红色", None),
    ("红 色", "红色", None), ("a dog", "dog", None), ("The Dog!", "dog", None), ("an apple", "apple", None),
    ("是的", "yes", ZH_YES_NO), ("对", "yes", ZH_YES_NO), ("有", "yes", ZH_YES_NO), ("正确", "yes", ZH_YES_NO),
    ("不是", "no", ZH_YES_NO), ("否", "no", ZH_YES_NO), ("没有", "no", ZH_YES_NO), ("不", "no", None),
    ("Yes.", "yes", None), ("NO", "no", None), ("没有", "0", ZH_COUNT), ("None", "0", "How many dogs?"),
    ("Two", "2", None), ("twenty-one", "21", None), ("two hundred and five", "205", None), ("1,000", "1000", None),
    ("dog's", "dogs", None), ("３．５", "3.5", None),
])
def test_normalisation_equivalences(a, b, question):
    assert normalize_answer(a, question) == normalize_answer(b, question) == b


@pytest.mark.parametrize("a, b", [
    ("红色", "蓝色"), ("3", "4"), ("三角形", "3角形"), ("3.5", "35"), ("yes", "no"), ("是个好人", "yes"),
    ("三只猫", "3"), ("有猫", "yes"), ("dog", "dogs"),
])
def test_normalisation_keeps_what_differs(a, b):
    assert normalize_answer(a) != normalize_answer(b)


@pytest.mark.parametrize("text, value", [
    ("三", 3), ("十", 10), ("十二", 12), ("二十", 20), ("二十五", 25), ("一百零五", 105), ("两", 2), ("〇", 0),
    ("零", 0), ("一千零一", 1001), ("一万零三百", 10300), ("十万", 100000), ("一亿两千万", 120_000_000),
    ("二〇二四", 2024), ("42", 42), ("猫", None), ("", None), ("三个", None),
])
def test_chinese_to_number(text, value):
    assert chinese_to_number(text) == value


def test_exact_match():
    assert exact_match("三个", ["3"]) == 1.0 and exact_match("四个", ["3"]) == 0.0
    assert exact_match("是的", ["Yes."], ZH_YES_NO) == 1.0 and exact_match("cat", ["dog", "Cat."]) == 1.0
    assert exact_match("dog", "a dog") == 1.0 and exact_match("dog", []) == 0.0


def test_vqa_soft_accuracy():
    refs = ["dog", "dog"] + ["cat"] * 8
    assert vqa_accuracy("a dog", refs) == pytest.approx(2 / 3)
    assert vqa_accuracy("cat", refs) == 1.0 and vqa_accuracy("bird", refs) == 0.0
    # Official leave-one-out: 2 subsets keep 1 "dog" (1/3), 8 keep both (2/3) -> (2/3 + 16/3) / 10 = 0.6.
    assert vqa_accuracy("dog", refs, leave_one_out=True) == pytest.approx(0.6)
    # 3 agreeing: 3 subsets keep 2 (2/3), 7 keep 3 (1) -> (2 + 7) / 10 = 0.9, the known VQAv2 value.
    assert vqa_accuracy("dog", ["dog"] * 3 + ["cat"] * 7, leave_one_out=True) == pytest.approx(0.9)
    # One reference (the_cauldron): exact match, not a 1/3 cap.
    assert vqa_accuracy("Dog.", ["dog"]) == 1.0 and vqa_accuracy("dog", ["dog", "cat"]) == 0.5


def test_levenshtein_and_anls_by_hand():
    assert levenshtein("kitten", "sitting") == 3 and levenshtein("", "abc") == 3 and levenshtein("abc", "abc") == 0
    assert anls("helo", ["hello"]) == pytest.approx(0.8)  # 1 insertion / 5
    assert anls("xyz", ["hello"]) == 0.0  # 5 / 5 -> NL 1
    assert anls("Hello", ["world", "hello"]) == 1.0  # max over references, case ignored
    assert anls("abcd", ["abce"]) == pytest.approx(0.75)
    assert anls("ab", ["ac"]) == 0.0  # NL exactly 0.5 is not < 0.5
    assert anls("ab", ["ac"], threshold=0.6) == pytest.approx(0.5)
    assert anls("ITC  limited", ["itc limited."]) == 1.0  # spaces collapse, a final full stop is ignored
    assert anls("", [""]) == 1.0 and anls("abc", []) == 0.0


def test_relaxed_accuracy_edges():
    assert relaxed_accuracy("105", ["100"]) == 1.0 and relaxed_accuracy("95", ["100"]) == 1.0  # exactly 5%: in
    assert relaxed_accuracy("1.05", ["1"]) == 1.0  # exactly 5% with float error
    assert relaxed_accuracy("105.01", ["100"]) == 0.0 and relaxed_accuracy("94.99", ["100"]) == 0.0
    assert relaxed_accuracy("12%", ["0.12"]) == 1.0 and relaxed_accuracy("12%", ["12"]) == 1.0
    assert relaxed_accuracy("12", ["0.12"]) == 0.0
    assert relaxed_accuracy("1,000", ["1000"]) == 1.0 and relaxed_accuracy("$1,020.", ["1000"]) == 1.0
    assert relaxed_accuracy("3.5", ["3.6"]) == 1.0 and relaxed_accuracy("3.5", ["3.7"]) == 0.0
    assert relaxed_accuracy("0", ["0"]) == 1.0 and relaxed_accuracy("0.01", ["0"]) == 0.0
    assert relaxed_accuracy("三", ["3"]) == 1.0 and relaxed_accuracy("-5", ["-5.2"]) == 1.0
    assert relaxed_accuracy("Yes", ["yes"]) == 1.0 and relaxed_accuracy("no", ["yes"]) == 0.0


@pytest.mark.parametrize("text", [
    "B", "b", "(B)", "（B）", "B.", "B)", "答案是B", "答案：B", "答案是 (B)", "The answer is B", "Answer: B", "option B",
    "我选B", "B) a cat", "B. Carbon dioxide", "I think it is B.",
])
def test_choice_letter_extraction(text):
    assert choice_letter(text) == "B"


@pytest.mark.parametrize("text", ["A cat", "H2O", "Answer: H2O", "A or B", "", "cat"])
def test_choice_letter_refuses_guesses(text):
    assert choice_letter(text) is None


def test_multiple_choice_accuracy():
    question = "Question: Which gas?\nChoices:\nA. Oxygen\nB. Carbon dioxide\nC. Nitrogen\nAnswer with the letter."
    assert parse_options(question) == {"A": "Oxygen", "B": "Carbon dioxide", "C": "Nitrogen"}
    assert multiple_choice_accuracy("(B)", ["Answer: B"], question) == 1.0
    assert multiple_choice_accuracy("Carbon dioxide", ["Answer: B"], question) == 1.0  # option text, from question
    assert multiple_choice_accuracy("it is carbon dioxide", ["B"], question) == 1.0
    assert multiple_choice_accuracy("Oxygen", ["Answer: B"], question) == 0.0
    assert multiple_choice_accuracy("a cat", ["B"], options=["a dog", "a cat"]) == 1.0
    assert multiple_choice_accuracy("cat", ["Cat."]) == 1.0  # no letters on either side: exact match


def test_subset_table_and_dispatch():
    assert {METRIC_BY_SUBSET[s] for s in ("docvqa", "infographic_vqa", "st_vqa")} == {"anls"}
    assert {METRIC_BY_SUBSET[s] for s in ("chartqa", "plotqa", "dvqa", "figureqa")} == {"relaxed"}
    assert {METRIC_BY_SUBSET[s] for s in ("ai2d", "scienceqa", "tqa", "iconqa", "aokvqa")} == {"choice"}
    assert METRIC_BY_SUBSET["vqav2"] == "vqa" and METRIC_BY_SUBSET["synthetic"] == "exact"
    assert set(METRIC_BY_SUBSET.values()) <= set(METRICS)
    assert metric_for("unknown").name == "exact" and metric_for("AI2D").name == "choice"
    assert metric_for("ai2d", "vqa_accuracy").name == "vqa" and metric_for("ai2d", "anls").fn is anls
    name, fn = metric_for("docvqa")  # unpacks as (name, fn), as smvl eval uses it
    assert name == "anls" and fn("helo", ["hello"]) == metric_for("docvqa")("helo", ["hello"]) == pytest.approx(0.8)
    assert score("三个", "3", "exact") == 1.0 and score("helo", ["hello"], "anls", threshold=0.2) == 0.0
    with pytest.raises(ValueError):
        metric_for("x", "nope")


INTERESTING = st.text(alphabet="三两十百〇零个只是的不没有对 aAbBthe.,，。!？%$1205-'’（）ＡＢ１\u3000", max_size=20)


@given(st.one_of(st.text(max_size=40), INTERESTING), st.sampled_from([None, ZH_COUNT, ZH_YES_NO, "how many?"]))
def test_normalisation_is_idempotent_and_total(text, question):
    once = normalize_answer(text, question)
    assert normalize_answer(once, question) == once
    assert once == once.strip() and "  " not in once


@given(st.one_of(st.text(max_size=20), INTERESTING), st.lists(st.one_of(st.text(max_size=20), INTERESTING),
                                                            max_size=4), st.sampled_from(sorted(METRICS)))
def test_metrics_are_total_and_bounded(pred, refs, name):
    assert 0.0 <= score(pred, refs, name, ZH_COUNT) <= 1.0
