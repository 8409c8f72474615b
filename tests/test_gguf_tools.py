"""The chat template `smvl export gguf` embeds renders tools, tool calls and tool results in llama.cpp's runtime
(llama-cpp-python's Jinja2 chat formatter, which `Llama` builds from the GGUF's `tokenizer.chat_template`) exactly
as transformers renders them."""

from __future__ import annotations

import pytest
from transformers import AutoProcessor

from smvl.data.sources.synthetic_tools import TOOLS

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install -e '.[test]')")

HISTORY = [
    {"role": "system", "content": "你是看图助手，需要时调用工具。"},
    {"role": "user", "content": "数一数图中红色的物体。"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "count_colour", "arguments": {"colour": "红色"}}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"个数": 1}'},
]


@pytest.mark.parametrize("thinking", [False, True])
def test_the_embedded_template_renders_a_tool_conversation_in_llama_cpp_as_transformers(tiny_model, tmp_path,
                                                                                       thinking):
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from smvl.export.gguf_export import export_gguf

    files = export_gguf(tiny_model, tmp_path, quant="f16")
    llm = llama_cpp.Llama(model_path=str(files.text), vocab_only=True, verbose=False)
    formatter = Jinja2ChatFormatter(llm.metadata["tokenizer.chat_template"], eos_token="<|im_end|>", bos_token="")
    prompt = formatter(messages=HISTORY, tools=TOOLS, enable_thinking=thinking).prompt
    processor = AutoProcessor.from_pretrained(tiny_model)
    expected = processor.tokenizer.apply_chat_template(HISTORY, tools=TOOLS, add_generation_prompt=True,
                                                       enable_thinking=thinking, tokenize=False)
    assert prompt == expected
    assert '"name": "record_object"' in prompt  # the schemas, in the system prompt
    assert '<tool_call>\n{"name": "count_colour", "arguments": {"colour": "红色"}}\n</tool_call>' in prompt
    assert '<tool_response>\n{"个数": 1}\n</tool_response>' in prompt
