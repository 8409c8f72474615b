"""The tiny preset's tokenizer cuts the synthetic set's Chinese into words, where Qwen3's own tokenizer does."""

from __future__ import annotations

import pytest

from smvl.data.sources import synthetic
from smvl.splice.presets import build_tiny_tokenizer


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_tokenizer()


def set_texts() -> list[str]:
    """Every question phrasing (all names filled in), description request, follow-up and answer of the set."""
    texts = []
    for phrasings in synthetic.PHRASINGS.values():
        for phrasing in phrasings:
            for shape in synthetic.SHAPES:
                for colour in synthetic.COLOURS:
                    for name in synthetic.NAMES:
                        name = name.format(shape=shape, colour=colour)
                        texts.append(phrasing.format(shape=shape, colour=colour, name=name))
    texts += [q for questions in synthetic.SCENE_ORDERS.values() for q in questions]
    texts += list(synthetic.FOLLOW_UPS.values())
    texts += [a for answers in synthetic.ANSWER_CLASSES.values() for a in answers]
    objects = [{"shape": s, "colour": c, "col": i % 2, "row": i // 2}
               for i, (s, c) in enumerate(zip(synthetic.SHAPES, synthetic.COLOURS))]
    texts += [synthetic.scene_answer(objects, order) for order in synthetic.SCENE_ORDERS]
    return sorted(set(texts))


def pieces(tokenizer, text: str) -> list[str]:
    return [tokenizer.decode([i]) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def test_every_answer_of_the_synthetic_set_is_one_whole_token_or_whole_characters(tiny):
    """Guards against merges learnt with a prefix space, which left 红色 as ç º¢ èī² (and 绿色 as ç »¿ èī²): the
    first token then named no colour at all."""
    for answers in synthetic.ANSWER_CLASSES.values():
        for text in answers:
            assert "".join(pieces(tiny, text)) == text
            assert all(len(p) >= 1 and "\ufffd" not in p for p in pieces(tiny, text)), pieces(tiny, text)
    for colour in synthetic.COLOURS:
        assert pieces(tiny, colour) == [colour]


def test_the_synthetic_set_tokenizes_as_qwen3_cuts_it(tiny, assets):
    from transformers import AutoTokenizer

    qwen = AutoTokenizer.from_pretrained(assets / "qwen3-0.6b")
    texts = set_texts()
    assert len(texts) > 100
    for text in texts:
        assert pieces(tiny, text) == pieces(qwen, text), text


def test_chat_roles_are_whole_tokens_as_in_qwen3(tiny):
    ids = tiny("<|im_start|>assistant\n<think>\n\n</think>\n\n", add_special_tokens=False)["input_ids"]
    assert [tiny.decode([i]) for i in ids] == ["<|im_start|>", "assistant", "\n", "<think>", "\n\n", "</think>", "\n\n"]
