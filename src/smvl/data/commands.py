"""`smvl data inspect SOURCE`."""

from __future__ import annotations


def processor_for(model: str | None):
    """The processor of a model folder, or of the tiny preset spliced once into the cache."""
    from transformers import AutoProcessor

    if model is None:
        from smvl.splice.model import splice
        from smvl.splice.presets import TINY_VERSION, cache_dir, get_preset

        model = cache_dir() / f"{TINY_VERSION}-spliced"
        if not (model / "config.json").is_file():
            preset = get_preset("tiny")
            splice(preset.vision, preset.text, model)
    return AutoProcessor.from_pretrained(model)


def cmd_inspect(args) -> int:
    from smvl.data.inspect import bench, inspect

    processor = processor_for(args.model)
    options = {"subsets": args.subsets, "weights": args.weights, "holdout": 0}
    if args.bench:
        for workers in sorted({0, args.workers}):
            print(bench(args.source, processor, args.limit, workers))
        return 0
    print(inspect(args.source, processor, args.max_length, args.limit, options))
    return 0


def register(sub) -> None:
    data = sub.add_parser("data", help="look at data sources").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("inspect", help="counts, token lengths, truncation at --max-length, one rendered sample")
    p.add_argument("source", help="synthetic | file.jsonl | file.json | cauldron folder | cauldron:<subsets>")
    p.add_argument("--model", help="model folder whose processor to use (default: the tiny preset)")
    p.add_argument("--max-length", type=int, default=2048)
    p.add_argument("--limit", type=int, default=200, help="samples to read")
    p.add_argument("--subsets", default="all")
    p.add_argument("--weights", default=None)
    p.add_argument("--bench", action="store_true", help="time loading + processing instead")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for --bench")
    p.set_defaults(func=cmd_inspect)
