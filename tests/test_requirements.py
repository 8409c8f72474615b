"""Declared dependency floors that are about safety, not features."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def test_torch_floor_excludes_the_weights_only_bypass():
    """CVE-2025-32434: before torch 2.6, `torch.load(weights_only=True)` could still be made to run code; the splice
    loads `.bin` sources with it."""
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    (torch,) = [r for r in map(Requirement, project["dependencies"]) if r.name == "torch"]
    assert not torch.specifier.contains("2.5.1") and torch.specifier.contains("2.6.0")
