"""Text-ability retention: the spliced model against its source LLM on text-only prompts.

Reports the share of prompts whose greedy answers are identical and the mean KL(source || spliced) of the
next-token distributions along the source's greedy answer (teacher-forced). Connector-only training must give
100% identical and KL 0; other recipes show their drift here. The abilities the LLM was chosen for are compared
the same way: prompts that offer tools (Qwen3 answers with a `<tool_call>`) and prompts in thinking mode.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from smvl.data.sources.synthetic_tools import function_tool
from smvl.infer.generate import generate_batch
from smvl.splice.model import PROVENANCE
from smvl.splice.sources import load_text_source

PROMPTS = [
    "你好，请用一句话介绍你自己。",
    "中国的首都是哪里？",
    "请把“我喜欢读书”翻译成英文。",
    "1加1等于几？",
    "写一首关于春天的两句诗。",
    "What is the capital of France?",
    "Explain photosynthesis in one sentence.",
    "列出三种常见的水果。",
]


WEATHER = function_tool("get_weather", "查询一个城市的天气", city="城市名")
TRANSLATE = function_tool("translate", "把一句话翻译成英文", text="要翻译的话")
# (prompt, tools, thinking): tool calls and thinking, with and without a tool to call
TOOLS_AND_THINKING = [
    ("北京今天天气怎么样？", [WEATHER], False),
    ("请把“我喜欢读书”翻译成英文。", [WEATHER, TRANSLATE], False),
    ("你好，请用一句话介绍你自己。", [WEATHER], False),
    ("上海明天会下雨吗？", [WEATHER, TRANSLATE], True),
    ("1加1等于几？", None, True),
    ("列出三种常见的水果。", None, True),
]


@torch.no_grad()
def tools_and_thinking(model, processor, llm, cases=TOOLS_AND_THINKING, max_new_tokens: int = 48) -> dict:
    """Greedy answers of both models to prompts that offer tools or ask in thinking mode."""
    same, samples = 0, []
    for prompt, tools, thinking in cases:
        args = ([[{"role": "user", "content": prompt}]], [[]])
        options = {"thinking": thinking, "tools": [tools], "max_new_tokens": max_new_tokens}
        ours, theirs = generate_batch(model, processor, *args, **options)[0], generate_batch(llm, processor, *args,
                                                                                             **options)[0]
        same += ours == theirs
        samples.append({"prompt": prompt, "tools": [t["function"]["name"] for t in tools or []],
                        "thinking": thinking, "model": ours, "source": theirs})
    return {"prompts": len(cases), "identical_greedy": same / len(cases), "samples": samples}


@torch.no_grad()
def retention(model, processor, llm, prompts: list[str] = PROMPTS, max_new_tokens: int = 24) -> dict:
    conversations = [[{"role": "user", "content": p}] for p in prompts]
    ours = generate_batch(model, processor, conversations, [[] for _ in prompts], max_new_tokens=max_new_tokens)
    theirs = generate_batch(llm, processor, conversations, [[] for _ in prompts], max_new_tokens=max_new_tokens)
    tok = processor.tokenizer
    kls = []
    for conversation, answer in zip(conversations, theirs):
        text = tok.apply_chat_template(conversation, chat_template=processor.chat_template, tokenize=False,
                                       add_generation_prompt=True, enable_thinking=False)
        prompt_ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        ids = tok(text + answer, add_special_tokens=False, return_tensors="pt")["input_ids"].to(model.device)
        start = prompt_ids.shape[1] - 1
        p = torch.log_softmax(llm(input_ids=ids.to(llm.device)).logits[0, start:].float(), -1)
        # Over the source's vocabulary: rows added by `--add-tokens` have no counterpart in the source.
        q = model(input_ids=ids).logits[0, start:, : p.shape[-1]].float()
        q = torch.log_softmax(q, -1).to(p.device)
        kls.append(torch.sum(p.exp() * (p - q), -1).mean().item())
    return {
        "prompts": len(prompts),
        "identical_greedy": sum(a == b for a, b in zip(ours, theirs)) / len(prompts),
        "mean_kl": sum(kls) / len(kls),
        "samples": [{"prompt": p, "model": a, "source": b} for p, a, b in zip(prompts, ours, theirs)],
        "tools_and_thinking": tools_and_thinking(model, processor, llm),
    }


def load_source_llm(model_dir, text_source: str | None = None):
    """The LLM a model was spliced from (smvl.json) and its name, or None and why it is not available here."""
    provenance = Path(model_dir) / PROVENANCE
    source = text_source or (json.loads(provenance.read_text()).get("text_source") if provenance.is_file() else None)
    if not source:
        return None, "no text source recorded in smvl.json"
    return load_text_source(source)
