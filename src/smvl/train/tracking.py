"""Experiment tracking beyond the Trainer's own scalars: the end-of-run sample answers as a table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from smvl.errors import UserError

PACKAGES = {"tensorboard": "tensorboard", "swanlab": "swanlab"}


def require(report_to: str) -> None:
    """Fail before any heavy work when the chosen tracker is not installed."""
    package = PACKAGES.get(report_to)
    if package and importlib.util.find_spec(package) is None:
        raise UserError(f"report_to={report_to} needs the {package} package: pip install 'smvl[{report_to}]'")


def table(rows: list[dict]) -> str:
    lines = ["| question | answer | reference | answer (blank image) |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['question']} | {r['with_images']} | {r['reference']} | {r['blank_images']} |" for r in rows]
    return "\n".join(lines)


def log_samples(report_to: str, rows: list[dict], out: Path, run_name: str | None) -> None:
    if report_to == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(log_dir=str(out / "tensorboard")) as writer:
            writer.add_text("sample_answers", table(rows))
    elif report_to == "swanlab":
        import swanlab

        run = swanlab.init(project="smvl", experiment_name=run_name or out.name, reinit=True)
        swanlab.log({"sample_answers": [swanlab.Text(f"Q: {r['question']}\nA: {r['with_images']}\nref: {r['reference']}")
                                        for r in rows]})
        run.finish()
