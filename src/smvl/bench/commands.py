"""`smvl bench ...`: benchmarks are commands, not timed tests.

Each module in BENCH_MODULES adds its own subcommand under `bench` with `register(bench_sub)`.
"""

from __future__ import annotations

import importlib

BENCH_MODULES = [
    "smvl.bench.data",
    "smvl.bench.generate",
    "smvl.bench.serve",
    "smvl.bench.train",
]


def register(sub) -> None:
    bench = sub.add_parser("bench", help="benchmarks (generation speed, server throughput, training step vs the "
                                          "reference recipe)")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    for name in BENCH_MODULES:
        importlib.import_module(name).register(bench_sub)
