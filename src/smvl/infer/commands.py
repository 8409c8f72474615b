"""`smvl chat` and `smvl infer`."""

from __future__ import annotations

from smvl.errors import UserError


def cmd_chat(args) -> int:
    from smvl.data.sample import BadSample
    from smvl.infer.chat import Chat
    from smvl.infer.generate import load

    # argparse leaves a question written after the options among the leftovers.
    stray = [a for a in args.extra if a.startswith("-")]
    if stray:
        raise UserError(f"unrecognized arguments: {' '.join(stray)}")
    question = " ".join(filter(None, [args.question, *args.extra])) or None
    model, processor = load(args.model, args.dtype, args.device)
    options = {"temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k,
               "max_new_tokens": args.max_new_tokens}
    chat = Chat(model, processor, args.system, args.thinking, args.hide_thinking, options)
    try:
        for path in args.image or []:
            chat.attach(path)
    except BadSample as exc:
        raise UserError(f"cannot use image: {exc}") from exc
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
    model, processor = load(args.model, args.dtype, args.device)
    written, skips = run_batch_inference(model, processor, source, Path(args.output), args.batch_size,
                                         thinking=args.thinking, max_new_tokens=args.max_new_tokens)
    print(f"answered {written} question(s) -> {args.output}")
    print(skips.table())
    return 0


def register(sub) -> None:
    p = sub.add_parser("chat", help="chat with a model, streaming; one-shot when a question is given")
    p.add_argument("model", help="model folder")
    p.add_argument("question", nargs="?")
    p.add_argument("--image", action="append", help="image for the first question (repeatable)")
    p.add_argument("--system")
    p.add_argument("--thinking", action=__import__("argparse").BooleanOptionalAction, default=False,
                   help="Qwen3's enable_thinking (default: off)")
    p.add_argument("--hide-thinking", action="store_true", help="do not show the <think> part")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_chat, accepts_overrides=True)

    p = sub.add_parser("infer", help="answer a JSONL file of questions in batches (resumable)")
    p.add_argument("model", help="model folder")
    p.add_argument("--input", required=True, help="JSONL: {id, question|messages, image|images}")
    p.add_argument("--output", required=True, help="JSONL answers, appended; ids already there are skipped")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--thinking", action=__import__("argparse").BooleanOptionalAction, default=False)
    p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_infer)
