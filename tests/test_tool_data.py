"""Training data with tool use and thinking: the record shapes read, what carries loss, truncation, drop_thinking."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
from PIL import Image
from transformers import AutoProcessor

from smvl.data.batches.collate import IGNORE, CollateOptions, Encoder
from smvl.data.batches.stream import CALLS_LEFT_OUT, BatchStream
from smvl.data.samples.sample import BadSample
from smvl.data.samples.skips import SkipLog
from smvl.data.sources.jsonl import read_chat_file, to_sample
from smvl.splice.template import extend_template

TOOL = {"name": "count", "description": "数一种颜色的物体",
        "parameters": {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}}
CALL = '<tool_call>\n{"name": "count", "arguments": {"colour": "红"}}\n</tool_call>'


@pytest.fixture(scope="module")
def processor(tiny_model):
    return AutoProcessor.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "red.png"
    Image.new("RGB", (64, 48), (255, 0, 0)).save(path)
    return path


def openai_record(picture, arguments='{"colour": "红"}'):
    return {"id": "oa", "images": [str(picture)], "tools": [{"type": "function", "function": TOOL}], "messages": [
        {"role": "system", "content": "你是助手。"},
        {"role": "user", "content": "<image>有几个红色的？"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "count", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "3"},
        {"role": "assistant", "content": "有3个。"}]}


def sharegpt_record(picture):
    return {"id": "sg", "image": str(picture), "system": "你是助手。", "tools": json.dumps([TOOL], ensure_ascii=False),
            "conversations": [{"from": "human", "value": "<image>有几个红色的？"},
                              {"from": "function_call", "value": '{"name": "count", "arguments": {"colour": "红"}}'},
                              {"from": "observation", "value": "3"},
                              {"from": "gpt", "value": "有3个。"}]}


def labelled(processor, enc) -> str:
    return processor.tokenizer.decode([t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE])


def prompt(processor, enc) -> str:
    return processor.tokenizer.decode([t for t, lab, k in zip(enc.input_ids, enc.labels, enc.kinds)
                                       if lab == IGNORE and k != "image"])


def test_openai_shape_trains_the_call_and_the_answer_never_the_schema_or_the_result(processor, picture, tmp_path):
    path = tmp_path / "tools.jsonl"
    path.write_text(json.dumps(openai_record(picture), ensure_ascii=False) + "\n")
    sample = next(read_chat_file(path, SkipLog()))
    enc = Encoder(processor)(sample)
    assert labelled(processor, enc) == f"{CALL}<|im_end|>有3个。<|im_end|>"
    shown = prompt(processor, enc)
    assert '"name": "count"' in shown and "# Tools" in shown and "<tool_response>\n3\n</tool_response>" in shown
    # Exactly what the model's own template writes for the conversation, image block aside.
    text = processor.tokenizer.decode([t for t, k in zip(enc.input_ids, enc.kinds) if k != "image"])
    rendered = processor.tokenizer.apply_chat_template(sample.messages, tools=sample.tools, tokenize=False,
                                                       chat_template=processor.chat_template)
    assert text == rendered.replace(processor.image_token, "")


def test_sharegpt_function_call_and_observation_turns_encode_as_the_openai_record(processor, picture):
    encoder = Encoder(processor)
    openai = encoder(to_sample(openai_record(picture), "a", picture.parent, "t"))
    sharegpt = encoder(to_sample(sharegpt_record(picture), "b", picture.parent, "t"))
    assert sharegpt.input_ids == openai.input_ids and sharegpt.labels == openai.labels


def test_arguments_as_a_string_or_an_object_render_as_the_model_writes_them(processor, picture):
    encoder = Encoder(processor)
    as_string = encoder(to_sample(openai_record(picture, '{"colour":"红"}'), "a", picture.parent, "t"))
    as_object = encoder(to_sample(openai_record(picture, {"colour": "红"}), "a", picture.parent, "t"))
    assert as_string.input_ids == as_object.input_ids and CALL in labelled(processor, as_string)


@pytest.mark.parametrize("change, reason", [
    (lambda r: r["messages"][2]["tool_calls"][0]["function"].update(arguments="{colour"), "malformed tool call"),
    (lambda r: r["messages"][2]["tool_calls"][0]["function"].update(arguments="[1]"), "malformed tool call"),
    (lambda r: r["messages"][2]["tool_calls"][0]["function"].pop("name"), "malformed tool call"),
    (lambda r: r.update(tools="{not json"), "malformed tools"),
    (lambda r: r.update(tools=[{"description": "no name"}]), "malformed tools"),
    (lambda r: r["messages"][2].update(tool_calls=[]), "empty answer"),
])
def test_a_malformed_tool_field_skips_the_sample_with_its_reason(picture, change, reason):
    record = copy.deepcopy(openai_record(picture))
    change(record)
    with pytest.raises(BadSample) as err:
        to_sample(record, "x", picture.parent, "t")
    assert err.value.reason == reason


def thinking_record(picture, content="<think>\n图里有三个红圆。\n</think>\n\n三个。", **fields):
    return {"id": "th", "images": [str(picture)], "messages": [
        {"role": "user", "content": "<image>有几个红色的？"}, {"role": "assistant", "content": content, **fields}]}


def test_a_trace_trains_in_thinking_mode_and_a_plain_answer_behind_the_empty_block(processor, picture):
    encoder = Encoder(processor)
    traced = encoder(to_sample(thinking_record(picture), "a", picture.parent, "t"))
    field = encoder(to_sample(thinking_record(picture, "三个。", reasoning_content="图里有三个红圆。"), "a",
                              picture.parent, "t"))
    plain = encoder(to_sample(thinking_record(picture, "三个。"), "a", picture.parent, "t"))
    assert labelled(processor, traced) == "<think>\n图里有三个红圆。\n</think>\n\n三个。<|im_end|>"
    assert field.input_ids == traced.input_ids and field.labels == traced.labels
    assert labelled(processor, plain) == "三个。<|im_end|>"
    whole = processor.tokenizer.decode(plain.input_ids)
    assert "<|im_start|>assistant\n<think>\n\n</think>\n\n三个。" in whole
    assert traced.thinking and not plain.thinking


def test_drop_thinking_trains_a_share_of_traced_samples_without_their_trace(processor, picture):
    sample = to_sample(thinking_record(picture), "a", picture.parent, "t")
    always = Encoder(processor, CollateOptions(drop_thinking=1.0))(sample)
    assert labelled(processor, always) == "三个。<|im_end|>" and not always.thinking
    half = Encoder(processor, CollateOptions(drop_thinking=0.5, seed=3))
    dropped = [not half(replace(sample, id=f"s{i}")).thinking for i in range(200)]
    assert 70 < sum(dropped) < 130
    again = [not half(replace(sample, id=f"s{i}")).thinking for i in range(200)]
    assert again == dropped  # drawn per sample id: a resume or another worker draws the same


def conversation(picture, call_first: bool):
    """Two questions; one of them answered through a tool call and its result."""
    tooled = [{"role": "user", "content": "有几个红色的？"},
              {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "count",
                                                                                 "arguments": {"colour": "红"}}}]},
              {"role": "tool", "content": "3"}, {"role": "assistant", "content": "有3个，都在左边。" * 4}]
    plain = [{"role": "user", "content": "背景是什么颜色？"}, {"role": "assistant", "content": "白色。" * 6}]
    turns = tooled + plain if call_first else plain + tooled
    turns[0] = {**turns[0], "content": "<image>" + turns[0]["content"]}
    return to_sample({"images": [str(picture)], "tools": [TOOL], "messages": turns}, "c", picture.parent, "t")


@pytest.mark.parametrize("call_first", [True, False])
def test_truncation_keeps_a_call_with_its_result_or_drops_both_and_counts_them(processor, picture, call_first):
    sample = conversation(picture, call_first)
    whole = len(Encoder(processor, CollateOptions(max_length=10**6))(sample).input_ids)
    seen = set()
    for max_length in range(whole - 60, whole + 1, 2):
        try:
            enc = Encoder(processor, CollateOptions(max_length=max_length, min_answer_tokens=4))(sample)
        except BadSample:
            continue
        text = processor.tokenizer.decode(enc.input_ids)
        calls = text.count('{"name": "count", "arguments"')  # the system prompt's example call names no tool
        assert calls == text.count("<tool_response>") == 1 - enc.calls_left_out
        seen.add(enc.calls_left_out)
    assert seen == ({0} if call_first else {0, 1})


def test_an_answer_that_ends_in_a_call_is_never_cut(processor, picture):
    record = openai_record(picture)
    record["messages"] = record["messages"][:3]
    sample = to_sample(record, "x", picture.parent, "t")
    need = len(Encoder(processor, CollateOptions(max_length=10**6))(sample).input_ids)
    with pytest.raises(BadSample, match="too long"):
        Encoder(processor, CollateOptions(max_length=need - 3, min_answer_tokens=1, retile=False))(sample)


def test_a_stream_counts_the_calls_truncation_leaves_out(processor, picture):
    sample = conversation(picture, call_first=False)
    whole = len(Encoder(processor, CollateOptions(max_length=10**6))(sample).input_ids)
    encoder = Encoder(processor, CollateOptions(max_length=whole - 40, min_answer_tokens=4, retile=False))
    skips = SkipLog(max_fraction=1.0)
    list(BatchStream(lambda epoch, shard: [sample], encoder, 1, encoder.options, epochs=1, skips=skips,
                     group_by_length=False))
    assert skips.notes == {CALLS_LEFT_OUT: 1}


@pytest.mark.parametrize("where", ["arguments", "schema", "result", "trace"])
def test_a_control_token_in_any_tool_or_thinking_field_is_refused(processor, picture, where):
    record = copy.deepcopy(openai_record(picture))
    leak = "x<|im_start|>assistant"
    if where == "arguments":
        record["messages"][2]["tool_calls"][0]["function"]["arguments"] = {"colour": leak}
    elif where == "schema":
        record["tools"][0]["function"] = {**TOOL, "description": leak}
    elif where == "result":
        record["messages"][3]["content"] = leak
    else:
        record["messages"][4]["reasoning_content"] = leak
    with pytest.raises(BadSample, match="token in text"):
        Encoder(processor)(to_sample(record, "x", picture.parent, "t"))


PLAIN_CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_a_template_without_tool_support_refuses_samples_that_need_it_and_says_what_it_lacks(processor, picture):
    plain = copy.deepcopy(processor)
    plain.chat_template = extend_template(PLAIN_CHATML, processor.image_token, processor.video_token)
    encoder = Encoder(plain)
    assert not (encoder.support.tools or encoder.support.tool_calls or encoder.support.reasoning)
    with pytest.raises(BadSample, match="drops tools, tool calls") as err:
        encoder(to_sample(openai_record(picture), "x", picture.parent, "t"))
    assert err.value.reason == "chat template cannot render it"
    with pytest.raises(BadSample, match="thinking traces"):
        encoder(to_sample(thinking_record(picture), "x", picture.parent, "t"))
    encoder(to_sample(thinking_record(picture, "三个。"), "x", picture.parent, "t"))  # plain samples still train
    assert Encoder(processor).support == type(encoder.support)(True, True, True, True)


def test_data_inspect_counts_tool_use_and_marks_the_call_as_labelled(picture, tmp_path, capsys):
    from smvl.cli import main

    path = tmp_path / "tools.jsonl"
    records = [openai_record(picture), thinking_record(picture), thinking_record(picture, "三个。")]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records))
    assert main(["data", "inspect", str(path), "--preset", "tiny", "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert ("tool use and thinking: 1 of 3 samples offer tools; 1 tool calls, 1 tool results, 1 thinking traces"
            in out)
    assert f"【{CALL}<|im_end|>】" in out and "【有3个。<|im_end|>】" in out
