"""Collation: which tokens carry loss, image blocks never cut, truncation by turns, padding."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from smvl.data.batches.collate import IGNORE, CollateOptions, Encoder, apply_image_policy, collate
from smvl.data.batches.pixels import normalise_on_model
from smvl.data.samples.sample import BadSample, Sample
from smvl.data.samples.skips import SkipLog
from smvl.data.batches.stream import IMAGES_LEFT_OUT, BatchStream
from smvl.data.batches.turns import TurnMarks


@pytest.fixture(scope="module")
def processor(tiny_model):
    return AutoProcessor.from_pretrained(tiny_model)


def image(w=96, h=80, colour=(255, 0, 0)):
    return Image.new("RGB", (w, h), colour)


def vqa(turns=1, images=1, answer="红色", question="图中的圆形是什么颜色？", sid="s"):
    messages = []
    for t in range(turns):
        parts = ([{"type": "image"}] * images if t == 0 else []) + [{"type": "text", "text": question}]
        messages += [{"role": "user", "content": parts}, {"role": "assistant", "content": f"{answer}{t}"}]
    return Sample(messages, [image() for _ in range(images)], id=sid)


def shown(processor, enc, which):
    return processor.tokenizer.decode([t for t, lab in zip(enc.input_ids, enc.labels) if (lab != IGNORE) == which])


def test_labels_assistant_only_vs_whole_text(processor):
    sample = vqa(turns=2)
    answer_only = Encoder(processor, CollateOptions(labels="assistant"))(sample)
    whole = Encoder(processor, CollateOptions(labels="all"))(sample)
    print("assistant policy, loss on:", repr(shown(processor, answer_only, True)))
    print("all policy, loss on:", repr(shown(processor, whole, True)))
    assert shown(processor, answer_only, True) == "红色0<|im_end|>红色1<|im_end|>"
    loss_text = shown(processor, whole, True)
    assert "图中的圆形是什么颜色？" in loss_text and "红色1<|im_end|>" in loss_text
    for enc in (answer_only, whole):
        for token, label, kind in zip(enc.input_ids, enc.labels, enc.kinds):
            if kind == "image" or token == processor.image_token_id:
                assert label == IGNORE
    assert "<|image_pad|>" not in loss_text and "<|vision_start|>" not in loss_text and "row_" not in loss_text


# Llama 3's layout: eos <|end_of_text|>, every turn (answers included) ends with <|eot_id|>.
LLAMA3_TEMPLATE = (
    "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
    "{% if m.content is string %}{{ m.content }}{% else %}{% for p in m.content %}"
    "{% if p.type == 'image' %}<|image_pad|>{% else %}{{ p.text }}{% endif %}{% endfor %}{% endif %}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def qwen3_base(processor):
    """Qwen3 base models' tokenizer: eos <|endoftext|>, while the template still ends turns with <|im_end|>."""
    processor = copy.deepcopy(processor)
    processor.tokenizer.eos_token = "<|endoftext|>"
    return processor, "<|im_end|>"


def llama3_like(processor):
    processor = copy.deepcopy(processor)
    processor.tokenizer.add_tokens(["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|end_of_text|>"],
                                   special_tokens=True)
    processor.tokenizer.eos_token = "<|end_of_text|>"
    processor.chat_template = LLAMA3_TEMPLATE
    return processor, "<|eot_id|>"


@pytest.mark.parametrize("variant", [qwen3_base, llama3_like])
def test_answers_end_at_the_template_turn_end_when_eos_differs(processor, variant):
    processor, turn_end = variant(processor)
    assert processor.tokenizer.eos_token != turn_end
    enc = Encoder(processor)(vqa(turns=2))
    assert shown(processor, enc, True) == f"红色0{turn_end}红色1{turn_end}"
    assert shown(processor, enc, False).count("图中的圆形是什么颜色？") == 2


def test_real_qwen3_template_turn_marks_with_the_base_models_eos(assets):
    from transformers import AutoConfig

    from smvl.splice.processor import build_processor

    vlm = AutoConfig.from_pretrained(assets / "smolvlm2-256m-video-instruct")
    processor = build_processor(assets / "smolvlm2-256m-video-instruct", assets / "qwen3-0.6b", vlm.vision_config, 4)
    processor.tokenizer.eos_token = "<|endoftext|>"
    encoder = Encoder(processor)
    assert encoder.marks == TurnMarks("<|im_start|>assistant\n", "<think>\n\n</think>\n\n", "<|im_end|>")
    assert shown(processor, encoder(vqa(turns=2, images=0)), True) == "红色0<|im_end|>红色1<|im_end|>"


def test_turn_end_is_what_follows_every_answer_not_only_the_last(processor):
    # A template that closes a conversation ending with an answer with <|endoftext|>: the text after the last answer
    # ("<|im_end|>\n<|endoftext|>") and after a middle one ("<|im_end|>\n<|im_start|>") share "<|im_end|>\n<|",
    # and the turn end must stop at a token boundary.
    template = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n"
                "{% elif messages[-1].role == 'assistant' %}<|endoftext|>{% endif %}")
    tok = processor.tokenizer

    def render(messages, **kwargs):
        return tok.apply_chat_template(messages, chat_template=template, tokenize=False, **kwargs)

    marks = TurnMarks.of(render, lambda text: tok(text, add_special_tokens=False)["input_ids"])
    assert marks == TurnMarks("<|im_start|>assistant\n", "", "<|im_end|>")


MARKERS = ["image_token", "fake_image_token", "global_image_token", "video_token", "header", "turn end"]


def marker_text(processor, encoder, name):
    return {"header": encoder.marks.header, "turn end": encoder.marks.end}.get(name) or getattr(processor, name)


@pytest.mark.parametrize("role", ["user", "assistant"])
@pytest.mark.parametrize("name", MARKERS)
def test_marker_text_in_a_message_is_a_bad_sample(processor, name, role):
    encoder = Encoder(processor)
    marker = marker_text(processor, encoder, name)
    sample = vqa(turns=2)
    turn = sample.messages[2 if role == "user" else 1]
    text = f"{marker}是什么？" if role == "user" else f"看 {marker} 这个"
    turn["content"] = [{"type": "text", "text": text}]
    with pytest.raises(BadSample, match="marker token in text") as caught:
        encoder(sample)
    assert repr(marker) in caught.value.detail and role in caught.value.detail


def test_smolvlm_marker_names_are_plain_text_where_qwen_tokens_are_the_markers(processor):
    assert processor.fake_image_token == "<|vision_start|>"
    enc = Encoder(processor)(vqa(question="<fake_token_around_image><global-img><image>是什么？"))
    fake = processor.tokenizer.convert_tokens_to_ids(processor.fake_image_token)
    assert enc.input_ids.count(fake) == 2 * 2 + 2 and enc.input_ids.count(processor.image_token_id) == 5 * 16
    assert "<fake_token_around_image><global-img><image>" in shown(processor, enc, False)


def test_a_stream_skips_and_counts_a_sample_with_marker_text(processor):
    encoder = Encoder(processor, CollateOptions())
    bad = vqa(question=f"{processor.image_token}是什么？", sid="bad")
    samples = [vqa(sid="a"), bad, vqa(sid="b")]
    skips = SkipLog(max_fraction=1.0)
    batches = list(BatchStream(lambda epoch, shard: samples, encoder, 2, encoder.options, epochs=1, skips=skips,
                               group_by_length=False))
    assert sum(b["input_ids"].shape[0] for b in batches) == 2
    assert skips.by_reason == {"marker token in text": 1}  # reads are counted by the source, rejections here
    assert skips.examples["marker token in text"] == ["bad"]


def test_encoding_matches_the_stock_processor(processor):
    sample = vqa(turns=2)
    enc = Encoder(processor)(sample)
    text = processor.tokenizer.apply_chat_template(sample.messages, chat_template=processor.chat_template, tokenize=False)
    ref = processor(text=text, images=[sample.images], return_tensors="pt")
    assert ref["input_ids"][0].tolist() == enc.input_ids
    assert torch.equal(ref["pixel_values"][0], enc.pixels())


def test_an_image_block_is_tokenised_once_per_grid(processor):
    encoder = Encoder(processor)
    first = encoder(vqa(turns=2))
    tokenised = []
    plain = encoder._ids
    encoder._ids = lambda text: tokenised.append(text) or plain(text)
    again = encoder(vqa(turns=2))
    assert again.input_ids == first.input_ids and again.labels == first.labels
    assert tokenised and not any(processor.image_token in text for text in tokenised)


def first_turns(processor, sample, turns, options=None):
    """The sample's first `turns` turns encoded without any length limit."""
    answers = [i for i, m in enumerate(sample.messages) if m["role"] == "assistant"]
    prefix = Sample(sample.messages[: answers[turns - 1] + 1], id=sample.id)
    prefix.images = sample.images[: prefix.image_parts()]
    return Encoder(processor, replace(options or CollateOptions(), max_length=10**6))(prefix)


def test_trailing_turns_are_dropped_whole_before_an_answer_is_shortened(processor):
    sample = vqa(turns=3, answer="答案" * 10)
    full = Encoder(processor)(sample)
    cut = Encoder(processor, CollateOptions(max_length=len(full.input_ids) - 5))(sample)
    two = first_turns(processor, sample, 2)
    assert cut.truncated and (cut.input_ids, cut.labels) == (two.input_ids, two.labels)
    assert shown(processor, cut, True) == "答案" * 10 + "0<|im_end|>" + "答案" * 10 + "1<|im_end|>"


def test_a_later_user_turn_that_does_not_fit_is_dropped_not_cut(processor):
    sample = vqa(turns=2)
    sample.messages[2]["content"] = [{"type": "text", "text": "请详细描述这幅图。" * 20}]
    one = first_turns(processor, sample, 1)
    cut = Encoder(processor, CollateOptions(max_length=len(one.input_ids) + 30))(sample)
    assert cut.truncated and (cut.input_ids, cut.labels) == (one.input_ids, one.labels)


def test_turns_are_dropped_before_images_are_retiled(processor):
    sample = vqa(turns=2)
    sample.messages[2]["content"].insert(0, {"type": "image"})
    sample.images.append(image(colour=(0, 0, 255)))
    options = CollateOptions(images="all")
    one = first_turns(processor, sample, 1, options)
    limit = len(one.input_ids) + 10
    encoder = Encoder(processor, replace(options, max_length=limit))
    assert len(encoder.layout(sample.messages, [(0, 0), (0, 0)])[0]) <= limit  # re-tiling both would fit
    cut = encoder(sample)
    assert cut.tiles == [(2, 2)] and cut.input_ids == one.input_ids


def test_the_one_turn_left_has_its_answer_cut_at_its_end_keeping_prompt_and_tiles(processor):
    sample = vqa(answer="答案" * 30)
    full = Encoder(processor)(sample)
    start = full.kinds.index("answer")
    cut = Encoder(processor, CollateOptions(max_length=start + 20))(sample)
    assert cut.truncated and cut.tiles == full.tiles and cut.input_ids == full.input_ids[: start + 20]
    assert cut.kinds[start:] == ["answer"] * 20 and cut.labels[start:] == cut.input_ids[start:]
    assert "<|im_end|>" not in shown(processor, cut, True)


def test_an_answer_keeps_min_answer_tokens_else_images_are_retiled_or_the_sample_dropped(processor):
    sample = vqa(answer="答案" * 30)
    full = Encoder(processor)(sample)
    limit = full.kinds.index("answer") + 15  # room for 15 answer tokens, one short of the default minimum
    retiled = Encoder(processor, CollateOptions(max_length=limit))(sample)
    assert retiled.tiles == [(0, 0)] and len(retiled.input_ids) <= limit and retiled.kinds.count("answer") >= 16
    with pytest.raises(BadSample, match="too long"):
        Encoder(processor, CollateOptions(max_length=limit, retile=False))(sample)
    fewer = Encoder(processor, CollateOptions(max_length=limit, retile=False, min_answer_tokens=15))(sample)
    assert fewer.tiles == full.tiles and fewer.kinds.count("answer") == 15


def test_an_answer_shorter_than_the_minimum_is_never_cut(processor):
    sample = vqa()
    full = Encoder(processor)(sample)
    stop = len(full.kinds) - full.kinds[::-1].index("answer")
    assert full.kinds.count("answer") < CollateOptions().min_answer_tokens and stop < len(full.kinds)
    # Only the template's newline after <|im_end|> goes; one token less would cut the answer.
    whole = Encoder(processor, CollateOptions(max_length=stop, retile=False))(sample)
    assert whole.input_ids == full.input_ids[:stop] and shown(processor, whole, True) == "红色0<|im_end|>"
    with pytest.raises(BadSample, match="too long"):
        Encoder(processor, CollateOptions(max_length=stop - 1, retile=False))(sample)


def test_a_first_turn_that_does_not_fit_is_retiled_else_dropped(processor):
    sample = vqa()
    full = Encoder(processor)(sample)
    assert full.tiles == [(2, 2)]
    limit = len(full.input_ids) - 10
    retiled = Encoder(processor, CollateOptions(max_length=limit, retile=True))(sample)
    assert retiled.tiles == [(0, 0)] and len(retiled.input_ids) <= limit
    assert retiled.pixel_values.shape[0] == 1 and not retiled.truncated
    with pytest.raises(BadSample, match="too long"):
        Encoder(processor, CollateOptions(max_length=limit, retile=False))(sample)


def test_multi_image_policy(processor):
    sample = vqa(images=3)
    first = Encoder(processor, CollateOptions(images="first"))(sample)
    assert len(first.tiles) == 1
    every = Encoder(processor, CollateOptions(images="all", max_images=3))(sample)
    assert len(every.tiles) == 3 and every.pixel_values.shape[0] == 15
    with pytest.raises(BadSample, match="too many images"):
        Encoder(processor, CollateOptions(images="all", max_images=2))(sample)


def test_padding_longest_rounded_and_fixed(processor, tiny_model):
    enc = Encoder(processor)
    batch = [enc(vqa(sid="a")), enc(Sample([{"role": "user", "content": "你好"},
                                              {"role": "assistant", "content": "你好！"}], id="b"))]
    longest = max(len(e.input_ids) for e in batch)
    out = collate(batch, processor.tokenizer.pad_token_id, CollateOptions())
    assert out["input_ids"].shape[1] == -(-longest // 8) * 8
    assert out["pixel_values"].shape[:2] == (1, 5)
    fixed = collate(batch, processor.tokenizer.pad_token_id, CollateOptions(padding="max_length", max_length=300))
    assert fixed["input_ids"].shape == (2, 300)
    model = normalise_on_model(AutoModelForImageTextToText.from_pretrained(tiny_model), processor.image_processor)
    with torch.no_grad():
        a, b = model(**out).loss, model(**fixed).loss
    assert torch.allclose(a, b, atol=1e-5)  # padding changes nothing but cost


def answer_span(kinds):
    stop = len(kinds) - kinds[::-1].index("answer")
    start = stop
    while kinds[start - 1] == "answer":
        start -= 1
    return start, stop


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    turns=st.integers(1, 3),
    n_images=st.integers(0, 3),
    question_len=st.integers(1, 60),
    answer_len=st.integers(1, 80),
    fraction=st.floats(0.3, 2.0),
    policy=st.sampled_from(["first", "all"]),
    retile=st.booleans(),
    labels=st.sampled_from(["assistant", "all"]),
    min_answer=st.integers(1, 24),
    sizes=st.lists(st.tuples(st.integers(8, 300), st.integers(8, 300)), min_size=3, max_size=3),
)
def test_property_truncation_keeps_blocks_and_prompts_whole_and_labels_aligned(
        processor, turns, n_images, question_len, answer_len, fraction, policy, retile, labels, min_answer, sizes):
    sample = vqa(turns=turns, images=n_images, answer="好" * answer_len, question="问" * question_len)
    sample.images = [image(w, h) for w, h in sizes[:n_images]]
    options = CollateOptions(images=policy, max_images=3, retile=retile, labels=labels, min_answer_tokens=min_answer)
    # A limit relative to the first turn's length lands in its prompt, images or answer, or in a later turn.
    max_length = round(fraction * len(first_turns(processor, sample, 1, options).input_ids))
    encoder = Encoder(processor, replace(options, max_length=max_length))
    kept = apply_image_policy(sample, policy, 3)  # every image is in the first turn
    answers = [i for i, m in enumerate(kept.messages) if m["role"] == "assistant"]

    def first_turn_needs(size):
        """Tokens of the first turn's prompt and images at `size` plus the shortest answer allowed."""
        ids, kinds = encoder.layout(kept.messages[: answers[0] + 1], [encoder.grid(i, size) for i in kept.images])
        start, stop = answer_span(kinds)
        return start + min(stop - start, min_answer)

    try:
        enc = encoder(sample)
    except BadSample as exc:
        assert exc.reason == "too long for max_length"
        tried = [encoder.size, *range(encoder.size - encoder.tile, 0, -encoder.tile)] if retile else [encoder.size]
        assert first_turn_needs(tried[-1]) > max_length  # rejected only when the fewest tiles leave no room
        return
    ids, kinds = enc.input_ids, enc.kinds
    assert len(ids) == len(enc.labels) == len(kinds) <= max_length
    pad = processor.tokenizer.pad_token_id
    for i, (tok, lab, kind) in enumerate(zip(ids, enc.labels, kinds)):
        learnt = kind == "answer" if labels == "assistant" else kind != "image" and (tok != pad or kind == "answer")
        assert lab == (tok if learnt and i else IGNORE)
    # Image blocks whole: every tile's features and markers, one pixel tile each.
    n_features = sum(1 for t in ids if t == processor.image_token_id)
    tiles_expected = sum(r * c + 1 if r else 1 for r, c in enc.tiles)
    assert n_features == tiles_expected * processor.image_seq_len
    assert (enc.pixel_values.shape[0] if enc.pixel_values is not None else 0) == tiles_expected
    fake = processor.tokenizer.convert_tokens_to_ids(processor.fake_image_token)
    assert sum(1 for t in ids if t == fake) == sum(r * c + 2 if r else 2 for r, c in enc.tiles)
    # Prompts whole: the kept turns rendered whole, cut (if at all) inside the one turn left's answer.
    count = sum(1 for i, k in enumerate(kinds) if k == "answer" and (i == 0 or kinds[i - 1] != "answer"))
    whole_ids, whole_kinds = encoder.layout(kept.messages[: answers[count - 1] + 1], enc.tiles)
    assert (ids, kinds) == (whole_ids[: len(ids)], whole_kinds[: len(ids)])
    if len(ids) < len(whole_ids):
        start, stop = answer_span(whole_kinds)
        assert count == 1 and len(ids) - start >= min(stop - start, min_answer)
    # Turns dropped only when needed, and tiles reduced only when the first turn could not fit otherwise.
    if count < len(answers):
        assert len(encoder.layout(kept.messages[: answers[count] + 1], enc.tiles)[0]) > max_length
    if enc.tiles != [encoder.grid(i, encoder.size) for i in kept.images]:
        assert first_turn_needs(encoder.size) > max_length
    assert enc.truncated == (count < len(answers) or len(ids) < len(whole_ids))


def test_images_first_counts_the_images_it_leaves_out_of_a_multi_image_sample(processor):
    three = vqa(images=3)
    assert Encoder(processor, CollateOptions(images="first"))(three).images_left_out == 2
    assert Encoder(processor, CollateOptions(images="all", max_images=3))(three).images_left_out == 0
    assert Encoder(processor, CollateOptions(images="first"))(vqa(images=1)).images_left_out == 0


def test_a_stream_counts_the_images_images_first_leaves_out_in_the_runs_table(processor):
    encoder = Encoder(processor, CollateOptions(images="first"))
    samples = [vqa(images=3, sid="three"), vqa(sid="one"), vqa(images=2, sid="two")]
    skips = SkipLog(max_fraction=1.0)
    list(BatchStream(lambda epoch, shard: samples, encoder, 2, encoder.options, epochs=1, skips=skips,
                     group_by_length=False))
    assert not skips.by_reason and "kept, but images left out (data.images: first keeps one a sample): 3" in skips.table()
    total = SkipLog()
    total.merge(skips.drain())  # as a DataLoader worker's counts come home
    assert total.notes == {IMAGES_LEFT_OUT: 3}
