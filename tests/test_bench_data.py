"""Where the data pipeline's time goes (`smvl data inspect --bench`) and the stock-vs-fast data benchmark
(`smvl bench data`) on a tiny generated set."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from transformers import AutoProcessor

from smvl.bench.dataset import counts, write_bench_set
from smvl.data.inspect import STAGES, bench


@pytest.fixture(scope="module")
def bench_set(tmp_path_factory):
    return write_bench_set(tmp_path_factory.mktemp("benchset") / "set", samples=4)


def test_the_bench_set_has_the_cauldron_layout_and_mix(bench_set):
    from smvl.data.sources import open_source

    assert counts(4) == {"docvqa": 1, "chartqa": 1, "vqav2": 2}
    samples = list(open_source(str(bench_set), holdout=0))
    sizes = {s.source: s.images[0].size for s in samples}
    assert len(samples) == 4 and sizes["docvqa"][1] > 2000 and sizes["chartqa"][0] > 800
    assert write_bench_set(bench_set, samples=4) == bench_set  # made once, then reused


@pytest.mark.parametrize("fast", [True, False])
def test_inspect_bench_reports_time_per_stage(tiny_model, bench_set, fast):
    out = bench(str(bench_set), AutoProcessor.from_pretrained(tiny_model), limit=4, workers=0, fast=fast)
    assert "4 samples" in out and "samples/s" in out and ("fast" if fast else "stock") in out
    for stage in STAGES:
        assert f"  {stage} " in out, stage


def test_inspect_bench_with_a_worker_reports_samples_per_worker(tiny_model, bench_set):
    out = bench(str(bench_set), AutoProcessor.from_pretrained(tiny_model), limit=4, workers=1)
    assert "with 1 worker(s)" in out and "per worker" in out


def test_bench_data_compares_stock_and_fast_paths_on_a_tiny_set(assets, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "smvl", "bench", "data", "--out", str(tmp_path / "set"), "--samples", "3",
         "--workers", "1", "--repeats", "1", "--check", "3", "--json"],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout
    result = json.loads(out)
    assert result["agreement"]["same_tokens_and_tiles"] and result["agreement"]["samples"] == 3
    assert result["agreement"]["mean_abs_diff"] < 0.02  # 0.0113 at worst on the 64-sample set
    assert set(result["paths"]) == {"stock/0", "fast/0", "stock/1", "fast/1"}
    assert set(result["paths"]["fast/0"]["cpu_ms_per_sample"]) == set(STAGES)
    assert result["speedup_cpu"][0] > 0 and result["paths"]["fast/1"]["per_worker"][0] > 0


def test_bench_data_times_every_in_process_run_before_any_worker_run(monkeypatch):
    """A worker run forks the benchmark's process, which write-protects its whole heap: the next in-process run
    then faulted on every page it wrote (~1M faults, 0.8 s of system time for the stock path, 0.2 s for the fast
    one), so the in-process figures of every round after the first depended on which path came first."""
    import smvl.data.inspect as inspect_module
    from smvl.bench.data import bench_data
    from smvl.data.inspect import BenchRun

    calls = []

    def bench_run(folder, processor, samples, workers, fast=True):
        calls.append((workers, "fast" if fast else "stock"))
        return BenchRun(samples, 1.0, 1.0, workers, 0, {stage: 0.1 for stage in STAGES} if workers == 0 else {})

    monkeypatch.setattr(inspect_module, "bench_run", bench_run)
    result = bench_data("unused", None, 4, [1, 2], repeats=3)
    assert calls[:2] == [(0, "stock"), (0, "fast")]  # the untimed warm-up
    rounds = [("stock", "fast"), ("fast", "stock"), ("stock", "fast")]  # alternating which path goes first
    assert calls[2:] == [(w, path) for w in (0, 1, 2) for order in rounds for path in order]
    assert len(result["speedup_cpu"]) == 3 and set(result["paths"]) == {f"{p}/{w}" for p in ("stock", "fast")
                                                                        for w in (0, 1, 2)}


def test_bench_data_bad_arguments_are_one_line_errors(tmp_path):
    run = subprocess.run([sys.executable, "-m", "smvl", "bench", "data", "--out", str(tmp_path), "--workers", "x"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
