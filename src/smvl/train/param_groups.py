"""Per-component learning rates: the optimizer's parameter groups split by vision tower / connector / LLM.

A random tower, a fresh connector and an LLM (random or pretrained) learn at different speeds; one lr for all of
them is a compromise. The scheduler multiplies every group's own lr, so warm-up and decay keep the ratios.
"""

from __future__ import annotations

from torch import optim

from smvl.splice.recipes import components

# Config names (`lr_vision`, `lr_connector`, `lr_llm`) -> recipe component names.
COMPONENT_LR_KEYS = {"vision": "lr_vision", "connector": "lr_connector", "text": "lr_llm"}


def component_lrs(stage) -> dict[str, float]:
    """The components whose lr the stage sets apart from its `lr` (unset ones follow `lr`)."""
    return {part: getattr(stage, key) for part, key in COMPONENT_LR_KEYS.items() if getattr(stage, key) is not None}


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
