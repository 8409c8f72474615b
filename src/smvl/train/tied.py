"""Tied weights and the Trainer's "missing keys" warning.

Qwen3's `lm_head.weight` is the token embedding itself. A checkpoint stores a shared tensor once, so when the
Trainer loads the best checkpoint at the end (or resumes) it finds no `lm_head.weight` and warns "There were
missing keys in the checkpoint model loaded: ['lm_head.weight']", which reads like a broken model. It is not: loading
the embedding fills the head, the same tensor. Only keys that are not such an alias are worth a warning.
"""

from __future__ import annotations


def aliases(model) -> dict[str, set[str]]:
    """Parameter name -> the other names of the same tensor (empty for an untied parameter)."""
    by_tensor: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        by_tensor.setdefault(id(param), []).append(name)
    return {n: set(names) - {n} for names in by_tensor.values() for n in names}


def truly_missing(model, missing: list[str]) -> list[str]:
    """The missing keys that no loaded key filled: a tied key whose tensor was loaded under another name is dropped."""
    others = aliases(model)
    return [k for k in missing if not (others.get(k, set()) - set(missing))]
