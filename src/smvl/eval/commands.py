"""`smvl eval MODEL [MODEL ...] --data SOURCE`."""

from __future__ import annotations

import json
from pathlib import Path

from smvl.errors import UserError


def cmd_eval(args) -> int:
    from smvl.data.skips import SkipLog
    from smvl.data.sources import open_source
    from smvl.eval.evaluate import score_model
    from smvl.eval.report import write_report

    for model in args.models:
        if not (Path(model) / "config.json").is_file():
            raise UserError(f"{model} is not a model folder (no config.json)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    skips = SkipLog()
    split, holdout = ("train", 0) if args.split == "all" else (args.split, args.holdout)
    samples = [s for s in open_source(args.data, split=split, skips=skips, seed=args.seed, holdout=holdout,
                                      max_samples=args.limit, subsets=args.subsets) if s.images]
    if not samples:
        raise UserError(f"{args.data} gave no samples with images for split {args.split}")
    models = [score_model(Path(m), samples, out, args.metric, args.batch_size, args.seed, not args.no_retention)
              for m in args.models]
    (out / "results.json").write_text(json.dumps({"data": args.data, "split": args.split, "models": models},
                                                 indent=2, ensure_ascii=False))
    report = write_report(models, out, Path(args.run) if args.run else None)
    print(report.read_text(encoding="utf-8"))
    print(skips.table())
    return 0


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate one or more models side by side")
    p.add_argument("models", nargs="+", help="model folder(s)")
    p.add_argument("--data", default="synthetic", help="any data source (synthetic, file, cauldron folder, ...)")
    p.add_argument("--split", default="test", choices=["test", "train", "all"],
                   help="test: the held-out part (synthetic: its test split); all: every sample")
    p.add_argument("--holdout", type=float, default=64)
    p.add_argument("--subsets", default="all")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--metric", default=None, help="override the per-subset metric: exact, vqa, anls, relaxed, choice")
    p.add_argument("--out", default="runs/eval")
    p.add_argument("--run", default=None, help="a training run folder whose loss curves go into the report")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=42, help="must match training's seed for the synthetic test split")
    p.add_argument("--no-retention", action="store_true", help="skip the text-retention comparison")
    p.set_defaults(func=cmd_eval)
