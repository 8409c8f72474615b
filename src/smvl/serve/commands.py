"""`smvl serve`."""

from __future__ import annotations

from pathlib import Path


def cmd_serve(args) -> int:
    import uvicorn

    from smvl.infer.generate import load
    from smvl.serve.app import create_app
    from smvl.serve.limits import Limits

    model, processor = load(args.model, args.dtype, args.device)
    limits = Limits(queue_depth=args.queue_depth, allow_local_files=args.allow_local_files,
                    allow_remote_images=args.allow_remote_images)
    name = args.name or Path(args.model).resolve().name
    uvicorn.run(create_app(model, processor, name, limits, args.api_key), host=args.host, port=args.port)
    return 0


def register(sub) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible API and a web page for a model folder")
    p.add_argument("model", help="model folder")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", help="require `Authorization: Bearer KEY` on /v1/*")
    p.add_argument("--name", help="model id reported by /v1/models (default: the folder name)")
    p.add_argument("--queue-depth", type=int, default=16, help="requests generating or waiting before 503")
    p.add_argument("--allow-local-files", action="store_true", help="accept local image paths in image_url")
    p.add_argument("--allow-remote-images", action="store_true", help="fetch http(s) image URLs")
    p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_serve)
