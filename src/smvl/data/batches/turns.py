"""Where answers start and end in a conversation rendered by the LLM's chat template.

The collator labels answers by finding them in the rendered text, so it needs three strings the template writes
around every answer: the assistant header that opens it, the empty think block some templates (Qwen3) put after
that header, and the turn end that closes it. They are read off the template by rendering probe conversations, not
assumed: the turn end is not always the tokenizer's eos (Qwen3 base: eos `<|endoftext|>`, turns end with
`<|im_end|>`; Llama 3: eos `<|end_of_text|>`, turns end with `<|eot_id|>`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Probe contents: plain words, so that no template trims or rewrites them.
_QUESTION, _ANSWER, _FOLLOW_UP = "smvlquestion", "smvlanswer", "smvlfollowup"


@dataclass(frozen=True)
class TurnMarks:
    header: str  # opens an answer, e.g. "<|im_start|>assistant\n"
    empty_think: str  # prompt text between header and answer when thinking is off, e.g. "<think>\n\n</think>\n\n"
    end: str  # closes an answer and is learnt with it, e.g. "<|im_end|>"

    @classmethod
    def of(cls, render: Callable[..., str], ids: Callable[[str], list[int]]) -> TurnMarks:
        """`render(messages, **template_kwargs)` renders with the LLM's template; `ids` tokenises text."""
        user = {"role": "user", "content": _QUESTION}
        plain = render([user])
        header = render([user], add_generation_prompt=True)[len(plain):]
        empty_think = render([user], add_generation_prompt=True, enable_thinking=False)[len(plain) + len(header):]
        answer = {"role": "assistant", "content": _ANSWER}
        last = _after_answer(render([user, answer]))
        middle = _after_answer(render([user, answer, {"role": "user", "content": _FOLLOW_UP}]))
        # What follows every answer, whether or not a turn comes next (a template may add more at the very end).
        end = os.path.commonprefix([last, middle])
        # A cut inside a token (say "<|im_end|>\n<|" when the end text is followed by "<|im_start|>" in one and
        # "<|endoftext|>" in the other) would tokenise differently from the whole conversation.
        while end and ids(last)[: len(ids(end))] != ids(end):
            end = end[:-1]
        # Whitespace after the end token is formatting the model never generates: it stops at the end token.
        end = end.rstrip()
        if not header or not end:
            raise ValueError("the chat template marks no assistant header or no turn end; answers cannot be labelled")
        return cls(header, empty_think, end)

    def split(self, text: str) -> Iterator[tuple[str, str]]:
        """("prompt" | "answer", text) pieces of a rendered conversation, in order; answers include the turn end."""
        pos = 0
        while pos < len(text):
            start = text.find(self.header, pos)
            if start < 0:
                yield "prompt", text[pos:]
                return
            answer = start + len(self.header)
            if text.startswith(self.empty_think, answer):
                answer += len(self.empty_think)
            yield "prompt", text[pos:answer]
            end = text.find(self.end, answer)
            pos = len(text) if end < 0 else end + len(self.end)
            yield "answer", text[answer:pos]


def _after_answer(text: str) -> str:
    if _ANSWER not in text:
        raise ValueError("the chat template does not render an assistant message's content as given")
    return text[text.index(_ANSWER) + len(_ANSWER):]
