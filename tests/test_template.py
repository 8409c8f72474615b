"""The extended chat template renders text-only conversations byte for byte like the LLM's own template, and places
image parts whichever way the template reads message content."""

from __future__ import annotations

import copy

import pytest
from transformers import AutoTokenizer
from transformers.utils.chat_template_utils import render_jinja_template

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


# Ways real templates read content (Llama, Mistral, Phi, Gemma, SmolLM...), each as small as it gets.
READING_PATTERNS = {
    "dot": "{% for message in messages %}{{ message.role }}: {{ message.content }}\n{% endfor %}",
    "single-quoted bracket, other loop name": "{% for m in messages %}{{ m['content'] }}|{% endfor %}",
    "double-quoted bracket and trim": '{% for turn in messages %}{{ turn["content"] | trim }}|{% endfor %}',
    "system read by index": (
        "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}"
        "{% set rest = messages[1:] %}{% else %}{% set system = '' %}{% set rest = messages %}{% endif %}"
        "<<{{ system }}>>{% for m in rest %}{{ m.role }}={{ m.content }};{% endfor %}"
    ),
    "is string, else refuse": (
        "{% for m in messages %}{% if m['content'] is string %}{{ m['content'] }}"
        "{% else %}{{ raise_exception('content must be a string') }}{% endif %}{% endfor %}"
    ),
    "is not string, is mapping": (
        "{% for m in messages %}{% if m.content is not string or m.content is mapping %}PARTS"
        "{% else %}{{ m.content }}{% endif %}{% endfor %}"
    ),
    "content kept in a variable": (
        "{% for m in messages %}{% set content = m['content'] if m['content'] is string else '' %}"
        "{% if m.role == 'user' %}{{ content.strip() }}/{% endif %}{% endfor %}"
    ),
    "read inside a macro": "{% macro turn(msg) %}[{{ msg['content'] }}]{% endmacro %}"
                           "{% for m in messages %}{{ turn(m) }}{% endfor %}",
    "own parts handling (Gemma 3 style)": (
        "{% for message in messages %}{% if message['content'] is string %}{{ message['content'] | trim }}"
        "{% elif message['content'] is iterable %}{% for item in message['content'] %}"
        "{% if item['type'] == 'image' %}<start_of_image>{% elif item['type'] == 'text' %}{{ item['text'] | trim }}"
        "{% endif %}{% endfor %}{% endif %}{% endfor %}"
    ),
    "leading whitespace and lstrip_blocks": "\n  {% for m in messages %}\n    {{- m.content }}\n  {% endfor %}\n",
}
MULTIMODAL = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "Look: "}, {"type": "image"},
                                 {"type": "text", "text": " which animal?"}]},
    {"role": "assistant", "content": "A cat."},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "And here?"}]},
]


def flattened(messages, image_token):
    out = copy.deepcopy(messages)
    for message in out:
        if isinstance(message.get("content"), list):
            message["content"] = "".join(p["text"] if p["type"] == "text" else image_token for p in message["content"])
    return out


@pytest.mark.parametrize("pattern", list(READING_PATTERNS))
def test_image_parts_render_in_place_however_content_is_read(pattern):
    original = READING_PATTERNS[pattern]
    render = lambda t, m: render_jinja_template([m], chat_template=t)[0][0]  # noqa: E731
    text_only = [m for m in flattened(MULTIMODAL, "<I>") if m["role"] != "user" or "<I>" not in m["content"]]
    assert render(extend_template(original, "<I>", "<V>"), text_only) == render(original, text_only)
    ours = render(extend_template(original, "<I>", "<V>"), MULTIMODAL)
    assert ours == render(original, flattened(MULTIMODAL, "<I>"))
    assert ours.count("<I>") == 2 and "<start_of_image>" not in ours


def test_messages_without_string_content_pass_through_unchanged():
    original = "{% for m in messages %}{{ m.content is defined }} {{ m.content is none }} {{ m.content }};{% endfor %}"
    messages = [
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {}}}]},
        {"role": "assistant", "content": None},
        {"role": "user", "content": {"type": "text", "text": "a mapping is not a parts list"}},
        {"role": "user", "content": []},
    ]
    render = lambda t: render_jinja_template([messages], chat_template=t)[0][0]  # noqa: E731
    assert render(extend_template(original, "<I>", "<V>")) == render(original).replace("[]", "")
