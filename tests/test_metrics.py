"""Metrics against hand-computed cases, Chinese normalisation edge cases included."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smvl.eval.metrics import anls, choice, choice_letter, exact, metric_for, relaxed, vqa
from smvl.eval.normalize import chinese_to_number, normalize_answer


@pytest.mark.parametrize("a, b", [
    ("ＡＢＣ１２３", "abc123"), ("三", "3"), ("十二", "12"), ("两个", "2"), ("三个", "3"), ("红色。", "红色"),
    ("a dog", "dog"), ("The Dog!", "dog"), ("是的", "yes"), ("不是", "no"), ("没有", "no"), ("Two", "2"),
    ("一百零五", "105"), ("二十", "20"),
])
def test_normalisation_equivalences(a, b):
    assert normalize_answer(a, "图中有几个？") == normalize_answer(b, "图中有几个？")


def test_normalisation_keeps_what_differs():
    assert normalize_answer("红色") != normalize_answer("蓝色")
    assert normalize_answer("是个好人") not in ("yes", "no")
    assert chinese_to_number("一万零三百") == 10300 and chinese_to_number("猫") is None


def test_exact_and_vqa_soft_accuracy():
    assert exact("三个", ["3"]) == 1.0 and exact("四个", ["3"]) == 0.0
    refs = ["dog", "dog"] + ["cat"] * 8
    assert vqa("a dog", refs) == pytest.approx(2 / 3)
    assert vqa("cat", refs) == 1.0 and vqa("bird", refs) == 0.0


def test_anls_by_hand():
    assert anls("helo", ["hello"]) == pytest.approx(0.8)
    assert anls("xyz", ["hello"]) == 0.0
    assert anls("Hello", ["world", "hello"]) == 1.0


def test_relaxed_accuracy_edges():
    assert relaxed("105", ["100"]) == 1.0
    assert relaxed("105.1", ["100"]) == 0.0
    assert relaxed("12%", ["0.12"]) == 1.0 and relaxed("1,000", ["1000"]) == 1.0
    assert relaxed("Yes", ["yes"]) == 1.0 and relaxed("no", ["yes"]) == 0.0


@pytest.mark.parametrize("text", ["B", "(B)", "B.", "答案是B", "The answer is B", "B) a cat", "（B）"])
def test_choice_letter_extraction(text):
    assert choice_letter(text) == "B"


def test_choice_by_option_text_and_subset_table():
    assert choice("a cat", ["B"], options=["a dog", "a cat"]) == 1.0
    assert metric_for("docvqa")[0] == "anls" and metric_for("chartqa")[0] == "relaxed"
    assert metric_for("unknown")[0] == "exact" and metric_for("ai2d", "vqa")[0] == "vqa"
    with pytest.raises(ValueError):
        metric_for("x", "nope")


@given(st.text(max_size=40))
def test_normalisation_is_idempotent_and_total(text):
    once = normalize_answer(text)
    assert normalize_answer(once) == once
