"""Constrained decoding with xgrammar: forced tool calls (tool_choice required / a named function) and
response_format json_object / json_schema.

xgrammar (Apache-2.0, MLC; vLLM's and SGLang's default structured-output backend) runs on the CPU with our
byte-level tokenizer, and ships the structural tag for Qwen3's tool-call format (`qwen_3`: `<tool_call>\\n{"name":
"NAME", "arguments": ` + the tool's JSON schema + `}\\n</tool_call>`). A forced call is therefore generated in the
exact form the parser reads, with arguments that satisfy the tool's schema; vLLM constrains the same way (with
its own JSON layout that it parses separately). Prefilling `<tool_call>` instead would force a block but not a
known name or valid arguments. With thinking on, a free `<think>...</think>` comes first.

Imported only when a request asks for a constraint, so the CLI and unconstrained serving never load it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

MAX_WHITESPACE = 8  # a run of JSON whitespace: bounded, or a weak model may pad a constrained answer forever


class GrammarError(ValueError):
    """A schema xgrammar cannot compile; the message says why."""


@dataclass(frozen=True)
class Spec:
    """What to constrain, independent of the library: `tools` (forced tool calls) or `json` (an answer)."""

    kind: str  # "tools" | "json"
    thinking: bool
    tools: tuple = ()  # OpenAI tool dicts
    tool_choice: object = "required"  # "required" or {"type": "function", "function": {"name": ...}}
    parallel: bool = True
    schema: dict | None = None  # json: None for any JSON object


_compilers: dict[int, tuple] = {}
_lock = threading.Lock()


def _compiler(tokenizer, vocab_size: int):
    import xgrammar as xgr

    with _lock:
        key = id(tokenizer)
        if key not in _compilers or _compilers[key][0] is not tokenizer:
            info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
            _compilers[key] = (tokenizer, xgr.GrammarCompiler(info))
        return _compilers[key][1]


def _structural_tag(spec: Spec):
    import xgrammar as xgr
    from xgrammar import structural_tag as st

    if spec.kind == "tools":
        tools = [{"type": "function", "function": {"parameters": {"type": "object"}, **t["function"]}}
                 for t in spec.tools]
        body = xgr.get_model_structural_tag("qwen_3", tools=tools, tool_choice=spec.tool_choice,
                                            reasoning="disabled", parallel_tool_calls=spec.parallel,
                                            max_whitespace_cnt=MAX_WHITESPACE).format
    else:
        body = st.JSONSchemaFormat(json_schema=spec.schema or {"type": "object"}, max_whitespace_cnt=MAX_WHITESPACE)
    if spec.thinking:
        think = st.TagFormat(begin="<think>", content=st.AnyTextFormat(), end="</think>")
        body = st.SequenceFormat(elements=[think, st.ConstStringFormat(value="\n\n"), body])
    return st.StructuralTag(format=body)


def compile_spec(tokenizer, vocab_size: int, spec: Spec):
    """A compiled grammar for `spec`; GrammarError when a schema cannot be compiled."""
    try:
        return _compiler(tokenizer, vocab_size).compile_structural_tag(_structural_tag(spec))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise GrammarError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


class Constraint:
    """One row's grammar state: `mask` its logits before a token is chosen, `accept` the token chosen."""

    def __init__(self, compiled, end_ids: set[int]):
        import xgrammar as xgr

        self.xgr = xgr
        self.matcher = xgr.GrammarMatcher(compiled, override_stop_tokens=sorted(end_ids))
        self.bitmask = xgr.allocate_token_bitmask(1, compiled.tokenizer_info.vocab_size)

    def mask(self, logits: torch.Tensor) -> None:
        self.matcher.fill_next_token_bitmask(self.bitmask)
        self.xgr.apply_token_bitmask_inplace(logits.view(1, -1), self.bitmask.to(logits.device))

    def accept(self, token: int) -> None:
        if not self.matcher.is_terminated():
            self.matcher.accept_token(token)
