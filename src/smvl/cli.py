"""The `smvl` command: each area registers its subcommands; errors meant for users print as one line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

COMMAND_MODULES = [
    "smvl.splice.commands",
    "smvl.data.commands",
    "smvl.train.commands",
    "smvl.infer.commands",
    "smvl.serve.commands",
    "smvl.eval.commands",
    "smvl.export.commands",
    "smvl.bench.commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smvl", description="Splice, train, chat with, serve and evaluate small VLMs.")
    parser.add_argument("--hub", choices=["huggingface", "modelscope"],
                        help="where bare owner/name model ids are fetched from (default: $SMVL_HUB, else "
                             "huggingface); modelscope:<owner>/<name> always means ModelScope")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    if args.hub:
        os.environ["SMVL_HUB"] = args.hub  # read where ids resolve, and inherited by torchrun's workers

    from smvl.config import ConfigError
    from smvl.data.samples.skips import TooManySkipped
    from smvl.errors import UserError
    from smvl.splice.sources import SourceError

    try:
        return args.func(args)
    except (UserError, SourceError, ConfigError, TooManySkipped, FileNotFoundError) as exc:
        print(f"smvl {args.command}: error: {exc}", file=sys.stderr)
        return 2
