"""Which tool-use and thinking fields a chat template renders, read off the template by rendering probes.

Qwen3's template renders all four: `tools` (in the system prompt), an assistant's `tool_calls`, `tool` results and
`reasoning_content`. Many do not (Llama 2's and SmolLM2's ignore them; some raise on a `tool` role): a sample that
uses a field its template drops would train without it, silently, so the encoder refuses such a sample and names
what the template lacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

_NAME, _ARG, _RESULT, _TRACE = "smvlprobetool", "smvlprobearg", "smvlproberesult", "smvlprobetrace"


@dataclass(frozen=True)
class TemplateSupport:
    tools: bool
    tool_calls: bool
    tool_results: bool
    reasoning: bool

    @classmethod
    def of(cls, render: Callable[..., str]) -> TemplateSupport:
        """`render(messages, **template_kwargs)` renders with the template; a probe it raises on is unsupported."""
        user = {"role": "user", "content": "q"}
        tool = {"type": "function", "function": {"name": _NAME, "description": "", "parameters": {}}}
        call = {"role": "assistant", "content": "",
                "tool_calls": [{"type": "function", "function": {"name": _NAME, "arguments": {_ARG: 1}}}]}
        result = {"role": "tool", "content": _RESULT}
        answer = {"role": "assistant", "content": "a", "reasoning_content": _TRACE}

        def shows(probe: str, messages: list[dict], **kwargs) -> bool:
            try:
                return probe in render(messages, **kwargs)
            except Exception:  # noqa: BLE001 - a template's own `raise_exception`, or a field it indexes
                return False

        return cls(tools=shows(_NAME, [user], tools=[tool]), tool_calls=shows(_ARG, [user, call]),
                   tool_results=shows(_RESULT, [user, call, result]), reasoning=shows(_TRACE, [user, answer]))

    def missing(self, messages: list[dict], tools) -> str | None:
        """What of `messages` / `tools` this template would drop, or None."""
        needs = {"tools": bool(tools), "tool calls": any(m.get("tool_calls") for m in messages),
                 "tool results": any(m["role"] == "tool" for m in messages),
                 "thinking traces": any(m.get("reasoning_content") for m in messages)}
        has = {"tools": self.tools, "tool calls": self.tool_calls, "tool results": self.tool_results,
               "thinking traces": self.reasoning}
        lacking = [what for what, needed in needs.items() if needed and not has[what]]
        return ", ".join(lacking) or None
