"""`smvl chat` and `smvl infer`."""

from __future__ import annotations

import argparse

from smvl.errors import UserError

DTYPES = ("auto", "bf16", "fp16", "fp32")  # here, not in generate.py, so building the CLI does not import torch


def device_arg(value: str) -> str:
    if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
        return value
    raise argparse.ArgumentTypeError(f"{value!r}: use auto, cpu, cuda or cuda:N")


def add_model_args(p) -> None:
    """Model folder, dtype and device: the same three for every command that loads a model for generation."""
    p.add_argument("model", help="model folder or hub id (a stock SmolVLM checkpoint)")
    p.add_argument("--dtype", default="auto", choices=DTYPES, help="auto: bf16 on GPUs that support it, else fp32")
    p.add_argument("--device", default="auto", type=device_arg, help="auto, cpu, cuda or cuda:N (default: auto)")


def add_sampling_args(p, max_new_tokens: int) -> None:
    p.add_argument("--thinking", action=argparse.BooleanOptionalAction, default=False,
                   help="Qwen3's enable_thinking (default: off)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0, help="0 = no top-k cut")
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens)


def sampling_options(args) -> dict:
    return {"temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k,
            "max_new_tokens": args.max_new_tokens}


def load_tools(path: str) -> list[dict]:
    """A JSON file holding a list of OpenAI function tools: [{"type": "function", "function": {"name", ...}}]."""
    import json
    from pathlib import Path

    try:
        tools = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"--tools {path}: cannot read a JSON file ({exc})") from None
    ok = isinstance(tools, list) and tools and all(
        isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)
        and isinstance(t["function"].get("name"), str) and t["function"]["name"] for t in tools)
    if not ok:
        raise UserError(f'--tools {path}: expected a JSON list of {{"type": "function", "function": {{"name": ...}}}}')
    return tools


def cmd_chat(args) -> int:
    from smvl.data.samples.sample import BadSample
    from smvl.infer.chat import Chat
    from smvl.infer.generate import load

    # argparse fills the optional positional before it sees the options, so a question written after them
    # arrives among the leftovers.
    stray = [a for a in args.extra if a.startswith("-")]
    if stray:
        raise UserError(f"unrecognized arguments: {' '.join(stray)}")
    question = " ".join(filter(None, [args.question, *args.extra])) or None
    tools = load_tools(args.tools) if args.tools else None
    model, processor = load(args.model, args.dtype, args.device)
    chat = Chat(model, processor, args.system, args.thinking, args.hide_thinking, sampling_options(args),
                tools=tools)
    try:
        for path in args.image or []:
            chat.attach(path)
    except BadSample as exc:
        raise UserError(f"cannot use image: {exc}") from exc
    try:
        for path in args.video or []:
            chat.attach_video(path)
    except BadSample as exc:
        raise UserError(f"cannot use video: {exc}") from exc
    if question:
        chat.ask(question)
    else:
        chat.repl()
    return 0


def cmd_infer(args) -> int:
    from pathlib import Path

    from smvl.infer.batch import run_batch_inference
    from smvl.infer.generate import load

    source = Path(args.input)
    if not source.is_file():
        raise UserError(f"input file {source} does not exist")
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    model, processor = load(args.model, args.dtype, args.device)
    report = run_batch_inference(model, processor, source, Path(args.output), args.batch_size,
                                 thinking=args.thinking, **sampling_options(args))
    print(report.summary(args.output))
    print(report.skips.table())
    return 0


def register(sub) -> None:
    p = sub.add_parser("chat", help="chat with a model, streaming; one-shot when a question is given")
    add_model_args(p)
    p.add_argument("question", nargs="?", help="ask this and exit (default: an interactive session)")
    p.add_argument("--image", action="append", metavar="PATH", help="image for the first question (repeatable)")
    p.add_argument("--video", action="append", metavar="PATH",
                   help="video file or folder of frames for the first question (frames sampled as the model's "
                        "video processor says)")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--hide-thinking", action="store_true", help="do not show the <think> part")
    p.add_argument("--tools", metavar="FILE",
                   help="JSON list of OpenAI function tools for the chat template; the model's tool calls are "
                        "printed parsed, and in a session `/tool RESULT` answers the oldest unanswered call (the "
                        "model goes on once all of a turn's calls are answered)")
    add_sampling_args(p, max_new_tokens=512)
    p.set_defaults(func=cmd_chat, accepts_overrides=True)

    p = sub.add_parser("infer", help="answer a JSONL file of questions in batches (resumable)")
    add_model_args(p)
    p.add_argument("--input", required=True, help="JSONL: {id, question|messages, image|images}")
    p.add_argument("--output", required=True, help="JSONL answers, appended; ids already there are skipped")
    p.add_argument("--batch-size", type=int, default=8)
    add_sampling_args(p, max_new_tokens=256)
    p.set_defaults(func=cmd_infer)
