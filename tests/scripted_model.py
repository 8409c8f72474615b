"""A tiny model that says what a test scripts (no tests here): its forward runs as usual, then each row's last
logits get +100 on the next token of the text chosen for that row's prompt, then on the end token. Everything
above the model (generate, the batch's rows, decoding, stop strings, logprobs, the template, the parser, the
stream) is the real code."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

FORCE = 100.0


class Script:
    def __init__(self, model, tokenizer, choose: Callable[[str], str | None]):
        self.model, self.tokenizer, self.choose = model, tokenizer, choose
        self.original = model.forward
        self.end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.targets: list[list[int] | None] = []
        self.step = 0
        self.prompts: list[str] = []  # every prompt generated from, as the model saw it

    def __call__(self, *args, **kwargs):
        out = self.original(*args, **kwargs)
        ids = kwargs["input_ids"]
        if ids.shape[1] > 1:  # a new batch's prompts
            mask = kwargs["attention_mask"].bool()
            prompts = [self.tokenizer.decode(row[m]) for row, m in zip(ids, mask)]
            self.prompts += prompts
            said = [self.choose(p) for p in prompts]
            self.targets = [None if s is None else self.tokenizer.encode(s, add_special_tokens=False) for s in said]
            self.step = 0
        for i, target in enumerate(self.targets):
            if target is not None:
                token = target[self.step] if self.step < len(target) else self.end
                out.logits[i, -1, token] += FORCE
        self.step += 1
        return out


@contextmanager
def scripted(model, processor, choose: Callable[[str], str | None]):
    """`model` saying choose(prompt) for each prompt (None: the model's own tokens) while the context lasts."""
    script = Script(model, processor.tokenizer, choose)
    model.forward = script
    try:
        yield script
    finally:
        del model.forward
