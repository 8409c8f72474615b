"""`smvl data inspect SOURCE` and `smvl data translate SOURCE`."""

from __future__ import annotations

from smvl.data.sources import (
    BUILT_IN,  # generated sources: inspected with the tiny preset by default
)
from smvl.errors import UserError


def processor_for(args) -> tuple[object, str]:
    """(processor, what it is). Default: the real pair the shipped configs train, for any source but the built-in
    sets (which the tiny preset trains on, and which need nothing downloaded): the figures exist to plan max_length
    for the real run."""
    from transformers import AutoProcessor

    from smvl.splice.presets import REAL_DEFAULT, get_preset
    from smvl.splice.processor import describe, pair_processor

    if args.model:
        from smvl.splice.sources import SMALL_FILES, resolve

        processor = AutoProcessor.from_pretrained(resolve(args.model, SMALL_FILES))
        return processor, f"processor of {args.model}: {describe(processor)}"
    if bool(args.vision) != bool(args.text):
        raise UserError("--vision and --text go together")
    if args.vision:
        processor, what = pair_processor(args.vision, args.text)
        return processor, f"processor of a splice of {args.vision} + {args.text}: {what}"
    name = args.preset or ("tiny" if args.source in BUILT_IN else REAL_DEFAULT)
    try:
        preset = get_preset(name)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    processor, what = pair_processor(preset.vision, preset.text, preset.scale_factor, preset.image_splitting)
    return processor, f"processor of preset {name}: {what}"


def cmd_inspect(args) -> int:
    from smvl.data.inspect import bench, inspect

    processor, what = processor_for(args)
    print(f"== figures for the {what}" + ("" if args.bench else f", at max_length {args.max_length}") + " ==")
    options = {"subsets": args.subsets, "weights": args.weights, "holdout": 0}
    if args.bench:
        for workers in sorted({0, args.workers}):
            print(bench(args.source, processor, args.limit, workers, fast=not args.stock_images))
        return 0
    print(inspect(args.source, processor, args.max_length, args.limit, options))
    return 0


def cmd_translate(args) -> int:
    from pathlib import Path

    from smvl.data.translate.run import TranslateOptions, print_report, translate

    report = translate(TranslateOptions(
        source=args.source, out=Path(args.out), endpoint=args.endpoint, model=args.model,
        api_key_env=args.api_key_env, concurrency=args.concurrency, limit=args.limit, subsets=args.subsets,
        prompt=args.prompt, policy=args.policy, cache=args.cache, retry_rejected=args.retry_rejected,
        timeout=args.timeout, retries=args.retries, backoff=args.backoff, progress=not args.no_progress))
    print_report(report, args.json)
    return 0


# Training's default (data.max_length), so that inspecting without options shows what `smvl train` would do; the
# data layer cannot import train's config, so a test keeps the two equal.
TRAIN_MAX_LENGTH = 1024


def register(sub) -> None:
    data = sub.add_parser("data", help="look at and translate data sources").add_subparsers(dest="data_command",
                                                                                            required=True)
    p = data.add_parser("inspect", help="counts, token lengths, truncation at --max-length, one rendered sample")
    p.add_argument("source", help="synthetic | synthetic-video | synthetic-tools | synthetic-thinking | file.jsonl | "
                                   "file.json | cauldron folder | cauldron:<subsets> | caption folder | "
                                   "shards/{000000..000099}.tar | modelscope:<owner>/<name> | a + b mixture")
    p.add_argument("--model", help="a model folder or hub id whose processor to use")
    p.add_argument("--preset", help="a named source pair (default: the tiny preset for the built-in "
                                    "sets (synthetic*), else the real pair the shipped configs train, "
                                    "smolvlm2-256m+qwen3-0.6b)")
    p.add_argument("--vision", help="with --text: the processor a splice of these sources would get")
    p.add_argument("--text")
    p.add_argument("--max-length", type=int, default=TRAIN_MAX_LENGTH,
                   help="as training's data.max_length, and the same default (%(default)s; the shipped real-pair "
                        "configs use 2048)")
    p.add_argument("--limit", type=int, default=200, help="samples to read")
    p.add_argument("--subsets", default="all")
    p.add_argument("--weights", default=None)
    p.add_argument("--bench", action="store_true", help="time loading + processing instead")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for --bench")
    p.add_argument("--stock-images", action="store_true",
                   help="with --bench: time the image processor's own call and full JPEG decodes (the path before "
                        "smvl's fast tiling) instead of the default fast path")
    p.set_defaults(func=cmd_inspect)

    t = data.add_parser("translate", help="translate a the_cauldron folder into Chinese JSONL through an "
                                          "OpenAI-compatible endpoint")
    t.add_argument("source", help="a local the_cauldron folder, <root>/<subset>/*.parquet")
    t.add_argument("--out", required=True, help="the JSONL to write (or to resume: ids already in it are skipped)")
    t.add_argument("--endpoint", required=True, help="an OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    t.add_argument("--model", required=True, help="the model name to ask the endpoint for")
    t.add_argument("--api-key-env", help="the environment variable holding the endpoint's API key")
    t.add_argument("--concurrency", type=int, default=8, help="requests in flight at most (%(default)s)")
    t.add_argument("--limit", type=int, help="translate the first N samples only (of the interleaved subsets)")
    t.add_argument("--subsets", default="all", help="comma-separated subset names, or all")
    t.add_argument("--prompt", help="the system prompt file (default: the shipped data/prompts/translate.md)")
    t.add_argument("--policy", help="a per-subset policy YAML (default: the shipped data/translate/policy.yaml)")
    t.add_argument("--cache", help="the translation cache (SQLite, default: OUT.cache.sqlite)")
    t.add_argument("--retry-rejected", action="store_true", help="ask again for texts whose translation was "
                                                                  "rejected in an earlier run")
    t.add_argument("--timeout", type=float, default=120.0, help="seconds per request (%(default)s)")
    t.add_argument("--retries", type=int, default=6, help="tries after the first on 429/5xx/timeouts")
    t.add_argument("--backoff", type=float, default=1.0, help="first retry's wait in seconds, doubled each time")
    t.add_argument("--json", action="store_true", help="print the report as JSON")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_translate)
