"""The floors run one way: splice <- data <- train/infer/eval/serve/export <- bench. A module may import its own
floor and the floors below, never one above, not even lazily inside a function (a lazy import still closes a
circle)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "smvl"
FLOOR = {"splice": 0, "data": 1, "train": 2, "infer": 2, "eval": 2, "serve": 2, "export": 2, "vllm_plugin": 2,
         "bench": 3}


def imported_areas(path: Path) -> set[str]:
    areas = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "smvl" and len(parts) > 1 and parts[1] in FLOOR:
                areas.add(parts[1])
    return areas


def test_no_module_imports_a_floor_above_its_own():
    upward = []
    for area, floor in FLOOR.items():
        for path in sorted((SRC / area).glob("*.py")) if (SRC / area).is_dir() else []:
            upward += [f"{path.relative_to(SRC)} imports smvl.{other}" for other in imported_areas(path)
                       if FLOOR[other] > floor]
    assert not upward, upward
