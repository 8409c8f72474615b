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
    import argparse

    from smvl.config_help import keys_table
    from smvl.train.config import TrainConfig

    p = sub.add_parser(
        "train",
        help="train a spliced model: smvl train [CONFIG.yaml] [--key value ...] (no arguments: the offline demo)",
        usage="smvl train [CONFIG.yaml] [--key value | --key=value ...]",
        description="Train with a YAML config and/or overrides (dotted keys for sections, e.g.\n"
        "--data.train synthetic --recipe lora --output-dir runs/x). With no arguments: the offline demo.\n"
        "Defaults < CONFIG.yaml < the command line. Optional keys take null (or none) for None.",
        epilog=keys_table(TrainConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # The optional CONFIG.yaml is taken from the leftover arguments: argparse would mistake an override's value
    # for it (`smvl train --steps 20`).
    p.set_defaults(func=cmd_train, accepts_overrides=True)
