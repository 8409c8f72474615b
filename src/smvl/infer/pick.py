"""Each row of a batch chooses its own next token: its sampling settings and seed, its grammar, its logprobs.

HF's generate samples every row of a batch with one setting and the global random generator, so a seed could not
make one request of a mixed batch repeatable. Here generate runs greedy and this processor, last in the list,
decides each row's token itself and leaves only that token possible, which greedy then takes. A row that is
greedy and unconstrained is left alone (its end tokens masked until it has min_new_tokens): its token is exactly
HF's greedy one. Logprobs are the model's own (before masks and temperature), as vLLM returns them by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LogitsProcessor


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


def filtered(logits: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """Temperature, then top-k, then top-p (HF's order); at least one token always stays."""
    logits = logits / sampling.temperature
    if sampling.top_k and sampling.top_k < logits.shape[-1]:
        kth = torch.topk(logits, sampling.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p < 1:
        ordered, order = torch.sort(logits, descending=True)
        probs = torch.softmax(ordered, -1)
        drop = torch.cumsum(probs, -1) - probs > sampling.top_p  # the mass before a token is already enough
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    return logits


class RowPicker(LogitsProcessor):
    """`rows` are smvl.infer.rows.Row; `logprobs[i]` holds row i's raw log-probabilities of the last step (for the
    rows that asked), which the step criterion reads once the token is known."""

    def __init__(self, rows: list, end_ids: set[int], prompt_width: int, device):
        self.rows, self.prompt_width, self.ends = rows, prompt_width, sorted(end_ids)
        self.generators = []
        for row in rows:
            seed = row.sampling.seed
            self.generators.append(torch.Generator(device=device).manual_seed(seed) if seed is not None else None)
        self.logprobs: list[torch.Tensor | None] = [None] * len(rows)

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_width
        for i, row in enumerate(self.rows):
            self.logprobs[i] = None
            if row.done:
                continue
            if row.constraint is not None and step:
                row.constraint.accept(int(input_ids[i, -1]))
            if row.top_logprobs is not None:
                self.logprobs[i] = torch.log_softmax(scores[i].float(), -1)
            if step < row.min_new_tokens:
                scores[i, self.ends] = float("-inf")
            if row.sampling.greedy and row.constraint is None:
                continue
            logits = scores[i].clone()
            if row.constraint is not None:
                row.constraint.mask(logits)
            if row.sampling.greedy:
                token = int(torch.argmax(logits))
            else:
                probs = torch.softmax(filtered(logits.float(), row.sampling), -1)
                token = int(torch.multinomial(probs, 1, generator=self.generators[i]))
            scores[i] = float("-inf")
            scores[i, token] = 0.0
        return scores
