"""`smvl bench generate`: time to first token and tokens/s for a fixed prompt and image, batch 1 and batch N.

torch and transformers are imported inside the functions: `register` runs whenever the CLI is built.
"""

from __future__ import annotations

import statistics
import time

PROMPT = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "请详细描述这张图片。"}]}]


def probe_image(size: int = 512):
    from PIL import Image

    return Image.linear_gradient("L").resize((size, size)).convert("RGB")


def sync(model) -> None:
    if model.device.type == "cuda":
        import torch

        torch.cuda.synchronize()


class FirstToken:
    """A generate() streamer that only notes when the first new token (after the prompt) comes out."""

    def __init__(self, model, start: float):
        self.model, self.start, self.calls, self.first = model, start, 0, None

    def put(self, value) -> None:
        self.calls += 1
        if self.calls == 2:  # the first call carries the prompt
            sync(self.model)
            self.first = time.perf_counter() - self.start

    def end(self) -> None:
        pass


def run_once(model, inputs, batch: int, new_tokens: int) -> tuple[float, float, int]:
    """(seconds to the first token, total seconds, tokens generated) for one batched generate."""
    from smvl.infer.generate import sampling

    sync(model)
    start = time.perf_counter()
    timer = FirstToken(model, start)
    out = model.generate(**inputs, **sampling(max_new_tokens=new_tokens, min_new_tokens=new_tokens),
                         streamer=timer)
    sync(model)
    total = time.perf_counter() - start
    return timer.first or total, total, (out.shape[1] - inputs["input_ids"].shape[1]) * batch


def measure(model, processor, image, batch: int, new_tokens: int, repeats: int) -> dict:
    """Medians over `repeats` runs after one warm-up (kernels, allocator, lazy init)."""
    from smvl.infer.generate import inputs_for

    inputs = inputs_for(model, processor, [PROMPT] * batch, [[image]] * batch)
    run_once(model, inputs, batch, 2)
    runs = [run_once(model, inputs, batch, new_tokens) for _ in range(repeats)]
    first, total = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    tokens = runs[0][2]
    decode = (tokens - batch) / (total - first) if total > first and tokens > batch else float("nan")
    return {"batch": batch, "prompt": int(inputs["input_ids"].shape[1]), "first": first, "total": total,
            "tokens": tokens, "per_s": tokens / total, "decode_per_s": decode}


def table(rows: list[dict], header: str) -> str:
    columns = f"{'batch':>5} {'prompt':>7} {'first token':>12} {'seconds':>9} {'tokens/s':>9} {'decode tok/s':>13}"
    lines = [header, columns]
    for r in rows:
        lines.append(f"{r['batch']:>5} {r['prompt']:>7} {r['first'] * 1000:>9.1f} ms {r['total']:>9.3f} "
                     f"{r['per_s']:>9.1f} {r['decode_per_s']:>13.1f}")
    return "\n".join(lines)


def bench_generate(model_dir, batch: int = 8, new_tokens: int = 64, dtype: str = "auto", device: str = "auto",
                   repeats: int = 3) -> str:
    from smvl.infer.generate import load

    model, processor = load(model_dir, dtype, device)
    image = probe_image(max(512, model.config.vision_config.image_size))
    rows = [measure(model, processor, image, size, new_tokens, repeats) for size in sorted({1, batch})]
    header = (f"device {model.device}, dtype {model.dtype}, {new_tokens} new tokens per row, KV cache on, "
              f"median of {repeats}")
    return table(rows, header)


def llama_cpp_run(pair, prompt: str, image, new_tokens: int) -> tuple[float, float, int]:
    """(seconds to the first token, total seconds, tokens) for one greedy llama.cpp generation (no early stop)."""
    start = time.perf_counter()
    first = []
    tokens = pair.greedy(prompt, [image], new_tokens, stop=False,
                         on_token=lambda i: first.append(time.perf_counter() - start) if i == 0 else None)
    return first[0], time.perf_counter() - start, len(tokens)


def bench_llama_cpp(model_dir, new_tokens: int = 64, quant: str = "f16", repeats: int = 3) -> str:
    """The same prompt and image, batch 1, CPU, same thread count: transformers (fp32) and the model exported to
    GGUF in llama.cpp; medians of `repeats` runs after a warm-up, and llama.cpp's figures as ratios."""
    import tempfile
    from pathlib import Path

    import torch

    from smvl.export.gguf_export import export_gguf
    from smvl.export.llama_run import LlamaPair
    from smvl.infer.generate import load, prompt_text
    from smvl.splice.sources import model_folder

    model, processor = load(model_dir, "fp32", "cpu")
    image = probe_image(max(512, model.config.vision_config.image_size))
    ours = measure(model, processor, image, 1, new_tokens, repeats)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        files = export_gguf(model_folder(model_dir), Path(tmp), quant=quant)
        with LlamaPair(files.text, files.mmproj, threads=threads) as pair:
            prompt = prompt_text(processor, PROMPT, thinking=False).replace(processor.tokenizer.image_token,
                                                                            pair.marker)
            prompt_tokens = len(pair.fed_ids(prompt, [image], 0))
            llama_cpp_run(pair, prompt, image, 2)
            runs = [llama_cpp_run(pair, prompt, image, new_tokens) for _ in range(repeats)]
    first, total = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    tokens = runs[0][2]
    theirs = {"batch": 1, "prompt": prompt_tokens, "first": first, "total": total, "tokens": tokens,
              "per_s": tokens / total, "decode_per_s": (tokens - 1) / (total - first)}
    header = (f"CPU, {threads} threads, batch 1, {new_tokens} new tokens, median of {repeats}; "
              f"first row transformers fp32, second llama.cpp {quant}")
    ratio = (f"llama.cpp / transformers: time to first token x{theirs['first'] / ours['first']:.2f}, "
             f"tokens/s x{theirs['per_s'] / ours['per_s']:.2f}, decode tokens/s "
             f"x{theirs['decode_per_s'] / ours['decode_per_s']:.2f}")
    return table([ours, theirs], header) + "\n" + ratio


def cmd_generate(args) -> int:
    from smvl.errors import UserError

    if args.batch < 1 or args.new_tokens < 2 or args.repeats < 1:
        raise UserError("--batch and --repeats must be at least 1, --new-tokens at least 2")
    if args.engine == "llama.cpp":
        print(bench_llama_cpp(args.model, args.new_tokens, args.quant, args.repeats))
        return 0
    print(bench_generate(args.model, args.batch, args.new_tokens, args.dtype, args.device, args.repeats))
    return 0


def register(bench_sub) -> None:
    from smvl.infer.commands import add_model_args

    p = bench_sub.add_parser("generate", help="time to first token and tokens/s, batch 1 and batch N")
    add_model_args(p)
    p.add_argument("--batch", type=int, default=8, help="the larger batch size (default: 8)")
    p.add_argument("--new-tokens", type=int, default=64, help="tokens generated per row (forced, no early stop)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per batch size; the median is shown")
    p.add_argument("--engine", choices=["transformers", "llama.cpp"], default="transformers",
                   help="llama.cpp: export to GGUF and compare it with transformers on the CPU, batch 1")
    p.add_argument("--quant", default="f16", help="with --engine llama.cpp: the export's --quant (default f16)")
    p.set_defaults(func=cmd_generate)
