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


def test_bench_data_bad_arguments_are_one_line_errors(tmp_path):
    run = subprocess.run([sys.executable, "-m", "smvl", "bench", "data", "--out", str(tmp_path), "--workers", "x"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
