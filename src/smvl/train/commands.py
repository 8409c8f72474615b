"""`smvl train [CONFIG.yaml] [--key value ...]`."""

from __future__ import annotations


def cmd_train(args) -> int:
    from smvl.train.run import load_config, train

    extra = list(args.extra)
    path = extra.pop(0) if extra and not extra[0].startswith("--") else None
    config = load_config(path, extra)
    train(config)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a spliced model: smvl train [CONFIG.yaml] [--key value ...] (no arguments: the offline demo)",
        description="Train with a YAML config and/or --key value overrides (dotted keys for sections, e.g. "
        "--data.train synthetic --recipe lora --output-dir runs/x). With no arguments: the offline demo.",
    )
    # The optional CONFIG.yaml is taken from the leftover arguments: argparse would mistake an override's value
    # for it (`smvl train --steps 20`).
    p.set_defaults(func=cmd_train, accepts_overrides=True)
