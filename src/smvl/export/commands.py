"""`smvl export gguf`."""

from __future__ import annotations

import sys
from pathlib import Path


def cmd_export_gguf(args) -> int:
    from smvl.export.gguf_export import export_gguf
    from smvl.splice.sources import model_folder

    files = export_gguf(model_folder(args.model), Path(args.out), quant=args.quant, name=args.name)
    for path in (files.text, files.mmproj):
        print(f"{path}  {path.stat().st_size / 2**20:.1f} MiB")
    print(f"run it: llama-mtmd-cli -m {files.text} --mmproj {files.mmproj} --image IMAGE -p PROMPT")
    for warning in files.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_export_sizes(args) -> int:
    from transformers import AutoConfig

    from smvl.errors import UserError
    from smvl.export.sizes import pair_config, size_table
    from smvl.splice.sources import model_folder

    if args.model:
        config = AutoConfig.from_pretrained(model_folder(args.model))
    elif args.vision and args.text:
        config = pair_config(model_folder(args.vision), model_folder(args.text))
    else:
        raise UserError("give a MODEL folder, or --vision and --text sources")
    print("tensor data per --quant (the vocabulary adds its strings on top):")
    print(size_table(config))
    return 0


# quant.QUANTS's keys; spelled out so that building the CLI does not import gguf.
QUANT_NAMES = ["f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0"]


def register(sub) -> None:
    p = sub.add_parser("export", help="export a model for other runtimes")
    what = p.add_subparsers(dest="format", required=True)
    g = what.add_parser("gguf", help="llama.cpp: the text model as a GGUF of its own architecture + an mmproj GGUF")
    g.add_argument("model", help="spliced or trained model folder (or hub id)")
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--quant", default="f16", choices=QUANT_NAMES,
                   help="text model tensor type (default f16); the mmproj is f16 unless f32/bf16 is asked for")
    g.add_argument("--name", help="file name stem (default: the model folder's name)")
    g.set_defaults(func=cmd_export_gguf)

    z = what.add_parser("gguf-sizes", help="expected GGUF sizes per --quant, from configs only (no weights)")
    z.add_argument("model", nargs="?", help="spliced model folder (config.json is enough)")
    z.add_argument("--vision", help="vision source folder (with --text: the pair smvl splice would build)")
    z.add_argument("--text", help="text source folder")
    z.set_defaults(func=cmd_export_sizes)
