"""Per-component learning rates: the optimizer's parameter groups split by vision tower / connector / LLM.

A random tower, a fresh connector and an LLM (random or pretrained) learn at different speeds; one lr for all of
them is a compromise. The scheduler multiplies every group's own lr, so warm-up and decay keep the ratios.
"""

from __future__ import annotations

from torch import optim

from smvl.splice.recipes import components

PARTS = ("connector", "vision", "text")  # the recipe's component names, which `lr.<part>` uses too


def base_lr(lr) -> float:
    """The Trainer's learning_rate: the number, or the lr of the parts a per-component `lr` does not name."""
    return lr if isinstance(lr, (int, float)) else lr.base


def component_lrs(lr) -> dict[str, float]:
    """The components whose lr differs from `base_lr` (the others follow it)."""
    if isinstance(lr, (int, float)):
        return {}
    named = {part: getattr(lr, part) for part in PARTS if getattr(lr, part) is not None}
    return {part: value for part, value in named.items() if value != lr.base}


def lr_of(lr, part: str) -> float:
    return component_lrs(lr).get(part, base_lr(lr))


def group_lines(model, lr) -> list[str]:
    """One line per component: parameters, trainable or frozen, and the lr it trains at (a tied lm_head counted once)."""
    lines = []
    for part, modules in components(model).items():
        params = {id(p): p for m in modules for p in m.parameters()}.values()
        trainable = sum(p.numel() for p in params if p.requires_grad)
        total = sum(p.numel() for p in params)
        state = f"lr {lr_of(lr, part):g}" if trainable else "frozen"
        lines.append(f"{part:>9}: {total / 2**20:8.2f}M params, {trainable / 2**20:8.2f}M trainable, {state}")
    return lines


def as_recorded(lr):
    """The stage's lr as smvl.json records it: a number, or a mapping of all three parts."""
    own = component_lrs(lr)
    return base_lr(lr) if not own else {part: lr_of(lr, part) for part in PARTS}


def owners(model) -> dict[int, str]:
    """id(parameter) -> component, for the (unwrapped) spliced model; a tied lm_head counts as the LLM's."""
    return {id(p): part for part, modules in components(model).items() for m in modules for p in m.parameters()}


def split_groups(groups: list[dict], owner: dict[int, str], lrs: dict[str, float]) -> list[dict]:
    """Each group (e.g. decay / no decay) split into one group per component with a set lr; the rest stay put."""
    out = []
    for group in groups:
        by_part: dict[str | None, list] = {}
        for p in group["params"]:
            part = owner.get(id(p))
            by_part.setdefault(part if part in lrs else None, []).append(p)
        for part, params in by_part.items():
            out.append({**group, "params": params, **({"lr": lrs[part]} if part is not None else {})})
    return out


def with_component_lrs(optimizer: optim.Optimizer, model, lrs: dict[str, float]) -> optim.Optimizer:
    """The optimizer with its groups split per component; called before any step, so it holds no state yet."""
    if lrs:
        groups = split_groups(optimizer.param_groups, owners(model), lrs)
        optimizer.param_groups = []
        for group in groups:
            optimizer.add_param_group(group)
    return optimizer
