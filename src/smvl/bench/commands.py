"""`smvl bench ...`: benchmarks are commands, not timed tests."""

from __future__ import annotations


def cmd_generate(args) -> int:
    from smvl.bench.generate import bench_generate

    print(bench_generate(args.model, args.batch, args.new_tokens, args.dtype, args.device))
    return 0


def register(sub) -> None:
    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench_command", required=True)
    p = bench.add_parser("generate", help="time to first token and tokens/s, batch 1 and batch N")
    p.add_argument("model", help="model folder")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_generate)
