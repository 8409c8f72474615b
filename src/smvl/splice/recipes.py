"""Which parts of the spliced model train in each recipe, as data: component -> frozen | full.

LoRA is `full` on the connector plus PEFT adapters on the LLM's attention/MLP projections (applied by the
trainer, since it wraps the model); everything else stays frozen.
"""

from __future__ import annotations

from torch import nn

RECIPES: dict[str, dict[str, str]] = {
    "connector": {"vision": "frozen", "connector": "full", "text": "frozen"},
    "vision+connector": {"vision": "full", "connector": "full", "text": "frozen"},
    "full": {"vision": "full", "connector": "full", "text": "full"},
    "lora": {"vision": "frozen", "connector": "full", "text": "lora"},
}
# Recipes in which the LLM learns: only there can a sample without images change the model.
TEXT_TRAINING = {name for name, parts in RECIPES.items() if parts["text"] != "frozen"}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def components(model) -> dict[str, list[nn.Module]]:
    """The spliced model's parts by role; the lm_head belongs to the text side (and is often tied to it)."""
    inner = model.model
    return {
        "vision": [inner.vision_model],
        "connector": [inner.connector],
        "text": [inner.text_model, model.lm_head],
    }


def apply_recipe(model, recipe: str) -> None:
    """Set requires_grad per component; raise for an unknown recipe or one that would train nothing."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    for part, modules in components(model).items():
        for module in modules:
            module.requires_grad_(RECIPES[recipe][part] == "full")
    if not any(p.requires_grad for p in model.parameters()) and recipe != "lora":
        raise ValueError(f"recipe {recipe!r} leaves no parameter trainable")


def count_params(model) -> tuple[int, int]:
    """(trainable, total), counting tied tensors once."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def format_counts(trainable: int, total: int) -> str:
    """PEFT's print_trainable_parameters style, in units of 2**20 as the reference recipe printed them."""
    return (
        f"trainable params: {trainable / 2**20:.2f}M || all params: {total / 2**20:.2f}M || "
        f"trainable%: {100 * trainable / total:.2f}"
    )
