"""The extended chat template renders text-only conversations byte for byte like the LLM's own template."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from smvl.splice.template import TemplateError, extend_template

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "天气",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
CONVERSATIONS = {
    "single": [{"role": "user", "content": "Hello! What is 2+2?"}],
    "system+multi-turn": [
        {"role": "system", "content": "你是一个乐于助人的助手。"},
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "你好！有什么可以帮你？"},
        {"role": "user", "content": "讲个笑话"},
    ],
    "thinking in history": [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "<think>\nsimple\n</think>\n\n2"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nagain simple\n</think>\n\n4"},
    ],
    "reasoning_content": [
        {"role": "user", "content": "3+3?"},
        {"role": "assistant", "content": "6", "reasoning_content": "add them"},
    ],
    "tools": [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "北京天气如何？"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "北京"}}}]},
        {"role": "tool", "content": '{"temp": 20}'},
        {"role": "tool", "content": '{"wind": 3}'},
        {"role": "assistant", "content": "北京20度。"},
        {"role": "user", "content": "<tool_response>\nx\n</tool_response>"},
    ],
}


@pytest.fixture(scope="module", params=["tiny", "real"])
def tokenizer(request, tiny_sources):
    if request.param == "tiny":
        return AutoTokenizer.from_pretrained(tiny_sources / "text")
    assets = request.getfixturevalue("assets")
    return AutoTokenizer.from_pretrained(assets / "qwen3-0.6b")


@pytest.mark.parametrize("name", list(CONVERSATIONS))
@pytest.mark.parametrize("kwargs", [
    {"add_generation_prompt": True},
    {"add_generation_prompt": True, "enable_thinking": False},
    {"add_generation_prompt": False},
])
def test_text_only_renders_byte_for_byte(tokenizer, name, kwargs):
    extended = extend_template(tokenizer.chat_template, "<|image_pad|>", "<|video_pad|>")
    tools = TOOLS if name == "tools" else None
    messages = CONVERSATIONS[name]
    original = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, **kwargs)
    ours = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, chat_template=extended, **kwargs)
    assert ours == original


def test_parts_lists_render_like_strings_and_images_become_tokens(tokenizer):
    extended = extend_template(tokenizer.chat_template, "<|image_pad|>", "<|video_pad|>")
    as_parts = [{"role": "user", "content": [{"type": "text", "text": "你好"}]}]
    as_text = [{"role": "user", "content": "你好"}]
    render = lambda m: tokenizer.apply_chat_template(m, tokenize=False, chat_template=extended)  # noqa: E731
    assert render(as_parts) == render(as_text)
    with_image = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "图中有什么？"},
                                                 {"type": "image"}]}]
    assert render(with_image) == "<|im_start|>user\n<|image_pad|>图中有什么？<|image_pad|><|im_end|>\n"


def test_template_without_content_is_refused():
    with pytest.raises(TemplateError):
        extend_template("{{ bos_token }}", "<i>", "<v>")
    with pytest.raises(TemplateError):
        extend_template("", "<i>", "<v>")
