"""`smvl eval MODEL [MODEL ...] --data SOURCE`."""

from __future__ import annotations

import json
from pathlib import Path

from smvl.errors import UserError


def check_arguments(args) -> list[Path]:
    """What a user can get wrong, found before any model is loaded or any data read; the models' local folders
    (hub ids fetched)."""
    from smvl.eval.metrics import metric_for
    from smvl.splice.sources import model_folder

    folders = [model_folder(model) for model in args.models]
    if args.metric is not None:
        try:
            metric_for("", args.metric)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    if args.batch_size < 1 or args.max_images < 1:
        raise UserError("--batch-size and --max-images must be at least 1")
    return folders


def cmd_eval(args) -> int:
    from smvl.data.batches.collate import CollateOptions
    from smvl.data.samples.skips import SkipLog
    from smvl.data.sources import open_source
    from smvl.eval.evaluate import score_model
    from smvl.eval.image_use import under_policy
    from smvl.eval.report import write_report

    folders = check_arguments(args)
    skips = SkipLog()
    split, holdout = ("train", 0) if args.split == "all" else (args.split, args.holdout)
    try:
        source = open_source(args.data, split=split, skips=skips, seed=args.seed, holdout=holdout,
                             max_samples=args.limit, subsets=args.subsets)
    except ValueError as exc:  # an unknown kind of source; a missing file is a FileNotFoundError, also one line
        raise UserError(str(exc)) from None
    options = CollateOptions(images=args.images, max_images=args.max_images)
    samples = under_policy(list(source), options, skips)
    if not samples:
        raise UserError(f"{args.data} gave no samples with images for split {args.split}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = [score_model(m, samples, out, options, args.data, args.seed, args.metric, args.batch_size,
                          not args.no_retention, args.force, args.thinking) for m in folders]
    (out / "results.json").write_text(json.dumps({"data": args.data, "split": args.split, "models": models},
                                                 indent=2, ensure_ascii=False))
    report = write_report(models, out, Path(args.run) if args.run else None)
    print(report.read_text(encoding="utf-8"))
    print(skips.table())
    return 0


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate one or more models side by side")
    p.add_argument("models", nargs="+", help="model folder(s) or hub id(s)")
    p.add_argument("--data", default="synthetic", help="any data source (synthetic, file, cauldron folder, ...)")
    p.add_argument("--split", default="test", choices=["test", "train", "all"],
                   help="test: the held-out part (synthetic: its test split); all: every sample")
    p.add_argument("--holdout", type=float, default=64)
    p.add_argument("--subsets", default="all")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--metric", default=None, help="override the per-subset metric: exact, vqa, anls, relaxed, choice")
    p.add_argument("--images", default="first", choices=["first", "all"],
                   help="as training's data.images: first keeps a sample's first image, all up to --max-images")
    p.add_argument("--max-images", type=int, default=4, help="as training's data.max_images")
    p.add_argument("--out", default="runs/eval")
    p.add_argument("--run", default=None, help="a training run folder whose loss curves go into the report")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=42, help="must match training's seed for the synthetic test split")
    p.add_argument("--no-retention", action="store_true", help="skip the text-retention comparison")
    p.add_argument("--thinking", action="store_true",
                   help="ask the questions again in thinking mode and score the answer after the trace")
    p.add_argument("--force", action="store_true", help="generate every answer again, ignoring saved predictions")
    p.set_defaults(func=cmd_eval)
