"""`smvl serve`."""

from __future__ import annotations

import os
import sys

LOOPBACK = ("127.0.0.1", "::1", "localhost")
KEY_VARIABLE = "SMVL_API_KEY"


def api_key(flag: str | None, environ=os.environ) -> str | None:
    """--api-key, else $SMVL_API_KEY (not shown by `ps`); an empty key is refused, as `--api-key "$KEY"` with KEY
    unset would otherwise lock every client out."""
    from smvl.errors import UserError

    key = flag if flag is not None else environ.get(KEY_VARIABLE)
    if key is not None and not key.strip():
        source = "--api-key is empty (an unset variable?)" if flag is not None else f"${KEY_VARIABLE} is empty"
        raise UserError(f"{source}; give a key, or none for no key")
    return key


def cmd_serve(args) -> int:
    import uvicorn

    from smvl.errors import UserError
    from smvl.serve.app import create_app
    from smvl.serve.settings import MiB, Settings

    flags = ("queue_depth", "max_batch", "max_tokens", "max_prompt_tokens", "max_images", "max_image_mb", "port",
             "max_video_mb", "max_video_seconds")
    for flag in flags:
        if getattr(args, flag) <= 0:
            raise UserError(f"--{flag.replace('_', '-')} must be positive")
    if args.batch_wait_ms < 0:
        raise UserError("--batch-wait-ms must not be negative")
    key = api_key(args.api_key)
    settings = Settings(model_name=args.name, api_key=key, dtype=args.dtype, device=args.device,
                        queue_depth=args.queue_depth, max_batch=args.max_batch,
                        batch_wait_ms=args.batch_wait_ms, max_tokens=args.max_tokens, max_images=args.max_images,
                        max_image_bytes=int(args.max_image_mb * MiB), max_prompt_tokens=args.max_prompt_tokens,
                        allow_local_files=args.allow_local_files, allow_remote_images=args.allow_remote_images,
                        max_video_bytes=int(args.max_video_mb * MiB), max_video_seconds=args.max_video_seconds)
    if args.host not in LOOPBACK and not key:
        print(f"smvl serve: warning: listening on {args.host} without --api-key: anyone who can reach this port "
              "can use the model", file=sys.stderr)
    app = create_app(args.model, settings)
    print(f"serving {app.state.worker.settings.model_name} on http://{args.host}:{args.port}/ "
          f"(API at /v1, queue depth {settings.queue_depth}, batches of up to {settings.max_batch})",
          file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def register(sub) -> None:
    from smvl.infer.commands import add_model_args

    p = sub.add_parser("serve", help="OpenAI-compatible API and a web page for a model folder")
    add_model_args(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", help=f"require `Authorization: Bearer KEY` on /v1/* (default: ${KEY_VARIABLE}, "
                                     "which `ps` does not show); without a key, only localhost and IP-address "
                                     "Host headers are answered")
    p.add_argument("--name", help="model id reported by /v1/models (default: the folder name)")
    p.add_argument("--queue-depth", type=int, default=16, help="requests generating or waiting before 503")
    p.add_argument("--max-batch", type=int, default=8,
                   help="requests generated together; greedy requests batch with each other, sampled ones with "
                        "the same temperature/top_p/top_k (default: 8)")
    p.add_argument("--batch-wait-ms", type=float, default=20.0,
                   help="a batch that is not full starts once no request has arrived for this long (default: 20)")
    p.add_argument("--max-tokens", type=int, default=1024, help="largest max_tokens a request may ask for")
    p.add_argument("--max-prompt-tokens", type=int, default=8192, help="prompt length after image expansion")
    p.add_argument("--max-images", type=int, default=4, help="images per request")
    p.add_argument("--max-image-mb", type=float, default=10.0, help="encoded size of one image, MiB")
    p.add_argument("--max-video-mb", type=float, default=32.0, help="encoded size of one video_url video, MiB")
    p.add_argument("--max-video-seconds", type=float, default=600.0,
                   help="longest video_url video, read from its header before decoding (longer: 413)")
    p.add_argument("--allow-local-files", action="store_true",
                   help="accept absolute local image and video paths in image_url / video_url")
    p.add_argument("--allow-remote-images", action="store_true", help="fetch http(s) image and video URLs")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)
