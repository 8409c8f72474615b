"""`smvl splice` and `smvl check`."""

from __future__ import annotations

import sys

from smvl.errors import UserError


def cmd_splice(args) -> int:
    from smvl.splice.model import splice
    from smvl.splice.presets import get_preset

    preset = get_preset(args.preset) if args.preset else None
    vision = args.vision or (preset and preset.vision)
    text = args.text or (preset and preset.text)
    if not vision or not text:
        raise UserError("give --vision and --text sources, or --preset NAME")
    scale, splitting = preset.layout(vision, text) if preset else (None, None)
    out = splice(vision, text, args.out, scale_factor=args.scale_factor or scale, dtype=args.dtype,
                 add_tokens=args.add_tokens, seed=args.seed, image_splitting=splitting)
    print(f"spliced {vision} + {text} -> {out}")
    return 0


def cmd_check(args) -> int:
    from smvl.splice.check import run_checks
    from smvl.splice.sources import model_folder

    results, counts = run_checks(model_folder(args.model), text_source=args.text_source)
    for r in results:
        print(r.line())
    if counts:
        print("parameters by recipe:")
        print("\n".join(counts))
    failed = [r for r in results if r.ok is False]
    if failed:
        print(f"{len(failed)} check(s) failed: {', '.join(r.name for r in failed)}", file=sys.stderr)
        return 1
    return 0


def register(sub) -> None:
    p = sub.add_parser("splice", help="splice a vision tower onto a causal LM")
    p.add_argument("--vision", help="SmolVLM/Idefics3 model folder or hub id")
    p.add_argument("--text", help="causal LM folder or hub id")
    p.add_argument("--preset", help="named source pair: tiny, smolvlm2-256m+qwen3-0.6b, ...")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--scale-factor", type=int, default=None, help="pixel-shuffle factor (default: the VLM's)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--add-tokens", action="store_true", help="add image markers the LLM has no reserved tokens for")
    p.add_argument("--seed", type=int, default=0, help="seed of the connector's initialisation")
    p.set_defaults(func=cmd_splice)

    p = sub.add_parser("check", help="verify a spliced or trained model (folder or hub id)")
    p.add_argument("model", help="model folder or hub id")
    p.add_argument("--text-source", help="the source LLM to compare text-only logits with (default: from smvl.json)")
    p.set_defaults(func=cmd_check)
