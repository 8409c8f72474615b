"""results.json -> report.md with a side-by-side table and PNG plots (accuracy per subset, loss curves)."""

from __future__ import annotations

import json
from pathlib import Path


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def loss_curves(run: Path) -> tuple[list, list]:
    """(train, eval) (step, loss) pairs from the newest trainer_state.json under a run folder."""
    states = sorted(run.glob("stage-*/checkpoint-*/trainer_state.json"),
                    key=lambda p: (p.parts[-3], int(p.parent.name.split("-")[1])))
    if not states:
        return [], []
    history = json.loads(states[-1].read_text())["log_history"]
    return ([(h["step"], h["loss"]) for h in history if "loss" in h],
            [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h])


def plot_accuracy(models: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    subsets = sorted({s for m in models for s in m["per_subset"]})
    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(subsets) * len(models)), 3.5))
    width = 0.8 / (2 * len(models))
    for k, m in enumerate(models):
        for j, condition in enumerate(("with_images", "blank_images")):
            offset = (2 * k + j) * width
            values = [m["per_subset"].get(s, {}).get(condition) or 0.0 for s in subsets]
            ax.bar([i + offset for i in range(len(subsets))], values, width,
                   label=f"{m['name']} {condition.replace('_', ' ')}")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(subsets))], subsets)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_loss(train: list, evals: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), marker="o", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


TOOL_ROWS = [("tool calls exact (right tool, arguments equal)", "call_accuracy"), ("right tool", "right_tool"),
             ("no-tool questions answered directly", "answered_directly"),
             ("no-tool questions answered right", "direct_accuracy"), ("tool-call blocks that are valid JSON",
                                                                      "valid_json")]


def tool_use_lines(models: list[dict]) -> list[str]:
    """The tool-calling and thinking-mode tables (with images / blank images), where some model has them."""
    lines = []
    both = ("with_images", "blank_images")
    if any("tool_use" in m for m in models):
        lines += ["", "## Tool calling (with images / blank images)", "",
                  "| | " + " | ".join(f"{m['name']} ({m.get('tool_use', {}).get('n', 0)} questions)" for m in models)
                  + " |", "| --- |" + " --- |" * len(models)]
        for label, key in TOOL_ROWS:
            lines.append(f"| {label} | " + " | ".join(
                " / ".join(percent(m["tool_use"][c][key]) for c in both) if "tool_use" in m else "-"
                for m in models) + " |")
    if any("thinking" in m for m in models):
        lines += ["", "## Thinking mode (with images / blank images)", "",
                  "| | " + " | ".join(m["name"] for m in models) + " |", "| --- |" + " --- |" * len(models)]
        rows = [("accuracy, no thinking", lambda m, c: percent(m[f"accuracy_{c}"])),
                ("accuracy, thinking (answer after the trace)", lambda m, c: percent(m["thinking"][c]["accuracy"])),
                ("traces closed", lambda m, c: percent(m["thinking"][c]["closed_trace"])),
                ("mean trace tokens", lambda m, c: f"{m['thinking'][c]['mean_trace_tokens']:.0f}")]
        for label, cell in rows:
            lines.append(f"| {label} | " + " | ".join(" / ".join(cell(m, c) for c in both) if "thinking" in m
                                                        else "-" for m in models) + " |")
    for m in models:
        extra = m.get("retention", {}).get("tools_and_thinking")
        if extra:
            lines.append(f"\nText-only tool calls and thinking against the source LLM ({m['name']}): identical "
                         f"greedy answers {extra['identical_greedy']:.0%} of {extra['prompts']} prompts.")
    return lines


def write_report(models: list[dict], out: Path, run: Path | None = None) -> Path:
    lines = ["# smvl evaluation", "", "| | " + " | ".join(m["name"] for m in models) + " |",
             "| --- |" + " --- |" * len(models)]
    rows = [("samples", lambda m: str(m["n"])),
            ("accuracy with images", lambda m: percent(m["accuracy_with_images"])),
            ("accuracy with blank images", lambda m: percent(m["accuracy_blank_images"])),
            ("accuracy with shuffled images", lambda m: percent(m["accuracy_shuffled_images"])),
            # fewer than all when a sample is alone in its image-count group (eval/shuffle.py)
            ("samples with shuffled images", lambda m: str(m["scored"]["shuffled_images"])),
            # videos only: every frame replaced by the first; the gap to it is what motion is worth
            ("accuracy with frozen frames", lambda m: percent(m.get("accuracy_frozen_frames"))),
            ("samples with videos", lambda m: str(m["scored"].get("frozen_frames", 0))),
            ("majority-answer baseline", lambda m: percent(m["majority_baseline"])),
            ("eval loss", lambda m: f"{m['eval_loss']:.4f}")]
    if not any("frozen_frames" in m["scored"] for m in models):
        rows = [row for row in rows if "frozen" not in row[0] and "videos" not in row[0]]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(m) for m in models) + " |")
    for m in models:
        r = m.get("retention", {})
        if "identical_greedy" in r:
            lines.append(f"| text retention ({m['name']}) | identical greedy {r['identical_greedy']:.0%}, "
                         f"mean KL {r['mean_kl']:.4g} |" + " |" * (len(models) - 1))
    subsets = sorted({s for m in models for s in m["per_subset"]})
    lines += ["", "## Per subset (with images / blank images)", "",
              "| subset | metric | " + " | ".join(m["name"] for m in models) + " |",
              "| --- | --- |" + " --- |" * len(models)]
    for s in subsets:
        cells = [" / ".join(percent(m["per_subset"][s][c]) for c in ("with_images", "blank_images"))
                 if s in m["per_subset"] else "-" for m in models]
        metric = next(m["per_subset"][s]["metric"] for m in models if s in m["per_subset"])
        lines.append(f"| {s} | {metric} | " + " | ".join(cells) + " |")
    lines += tool_use_lines(models)
    plot_accuracy(models, out / "accuracy.png")
    lines += ["", "![accuracy per subset](accuracy.png)"]
    if run is not None:
        train, evals = loss_curves(run)
        if train or evals:
            plot_loss(train, evals, out / "loss.png")
            lines += ["", f"## Loss curves of {run}", "", "![loss](loss.png)"]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
