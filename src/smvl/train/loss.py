"""Loss at labelled positions only, in chunks: no full-vocabulary logits for image, prompt or padding tokens.

The model's forward always runs `lm_head` over every position; with Qwen3's 151,936-word vocabulary that is a
[tokens, 151936] tensor (x3 with its float32 copy and gradient) for positions whose loss is masked anyway. While
`labelled_loss` runs, hooks on the output layer hand it an empty slice instead and compute, inside the same
forward call (so DDP/FSDP see an ordinary forward), the summed cross-entropy of the rows that have a target. Rows
go through `lm_head` `chunk` at a time under activation checkpointing, so peak memory is chunk x vocab whatever
the sequence length, and each chunk's logits are recomputed in the backward pass instead of kept.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from smvl.data.batches.collate import IGNORE
from smvl.data.batches.pixels import require_normaliser

CHUNK = 256


def shifted_targets(labels: torch.Tensor) -> torch.Tensor:
    """targets[:, i] = labels[:, i + 1]: position i predicts the next token (the last predicts nothing)."""
    return torch.cat([labels[:, 1:], labels.new_full((labels.shape[0], 1), IGNORE)], dim=1)


def _chunk_loss(hidden: torch.Tensor, weight: torch.Tensor, bias, targets: torch.Tensor) -> torch.Tensor:
    logits = F.linear(hidden, weight, bias).float()
    return F.cross_entropy(logits, targets, reduction="sum")


def chunked_cross_entropy(hidden: torch.Tensor, head: torch.nn.Linear, targets: torch.Tensor,
                          chunk: int = CHUNK) -> torch.Tensor:
    """Summed cross-entropy of hidden rows [N, H] against targets [N]."""
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], chunk):
        h, t = hidden[start : start + chunk], targets[start : start + chunk]
        if torch.is_grad_enabled() and (h.requires_grad or head.weight.requires_grad):
            total = total + checkpoint(_chunk_loss, h, head.weight, head.bias, t, use_reentrant=False)
        else:
            total = total + _chunk_loss(h, head.weight, head.bias, t)
    return total


@contextmanager
def _labelled_head(head: torch.nn.Module, targets: torch.Tensor, chunk: int):
    """While active, `head(hidden)` returns the summed loss of the rows with a target."""
    keep = targets != IGNORE
    stash = {}

    def before(module, args):
        stash["hidden"] = args[0]
        return (args[0][:, :0],)

    def after(module, args, output):
        hidden = stash.pop("hidden")
        return chunked_cross_entropy(hidden[keep], module, targets[keep], chunk)

    handles = [head.register_forward_pre_hook(before), head.register_forward_hook(after)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def unwrap(model):
    """The transformers model under DDP/FSDP/accelerate and PEFT wrappers (hooks go on its modules)."""
    while hasattr(model, "module"):
        model = model.module
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def labelled_loss(model, inputs: dict, chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed loss, number of targets) of a batch; `model` may be wrapped, its own forward is what runs."""
    require_normaliser(model, inputs)
    inputs = dict(inputs)
    targets = shifted_targets(inputs.pop("labels"))
    head = unwrap(model).get_output_embeddings()
    with _labelled_head(head, targets, chunk):
        total = model(**inputs, use_cache=False).logits
    return total, (targets != IGNORE).sum()
