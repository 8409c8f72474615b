"""Under CI=true a skip fails the run unless CI cannot meet its reason (no vLLM venv)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(tmp_path, reason: str, ci: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_one.py").write_text(f"import pytest\n\ndef test_x():\n    pytest.skip({reason!r})\n")
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(HERE)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "ci_skips", "-p", "no:cacheprovider",
                           str(tmp_path / "test_one.py")], cwd=tmp_path, env=env, capture_output=True, text=True)


def test_a_skip_fails_under_ci_but_not_elsewhere(tmp_path):
    failed = run(tmp_path, "/usr/bin/chromium not found", "true")
    assert failed.returncode == 1 and "skipped under CI, where it must run: /usr/bin/chromium not found" in failed.stdout
    assert run(tmp_path, "/usr/bin/chromium not found", "").returncode == 0


def test_ci_may_skip_what_it_cannot_have(tmp_path):
    assert run(tmp_path, "no vLLM venv at /x", "true").returncode == 0
