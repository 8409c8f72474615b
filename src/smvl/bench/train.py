"""`smvl bench train`: our training step against the hand-written reference recipe, side by side.

Both run in one process on the SAME samples (`bench/samples.py`) from the SAME random weights, alternating round
by round (which goes first alternates too), after one untimed warm-up round each:
- reference: every sample padded to 2,048 tokens, eager attention, batch 1, the model's own loss over
  full-vocabulary logits at every position;
- ours: samples packed into padding-free rows of at most `--pack-tokens` (default 2,048, the reference's row, so
  both hold about as many tokens per step), per-sample (varlen) attention, SDPA in the vision tower, loss at
  labelled positions only, in chunks. A round is one of our rows and the same samples one by one in the reference.
Both use the same label policy (`--labels`, default the reference's whole-text loss) and an AdamW step with
learning rate 0, so the weights never change and the two mean losses (summed over every labelled token, divided by
their number) must agree to float precision: that is `loss_rel_diff`. The model is built from the real configs
(`--vision/--text`, default ../shared/assets) with random weights; `--text-layers/--vision-layers` shorten the depth
for a CPU run and keep the real widths and vocabulary.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

from smvl.bench.random_sources import ASSET_DIRS
from smvl.errors import UserError

PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "4090": 165.0}  # dense bf16


def default_source(kind: str) -> str:
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        folder = root.parent / "shared" / "assets" / ASSET_DIRS[kind]
        if (folder / "config.json").is_file():
            return str(folder)
    raise UserError(f"no --{kind} given and ../shared/assets/{ASSET_DIRS[kind]} not found beside the checkout")


def bench_model(vision: str, text: str, text_layers: int | None, vision_layers: int | None, seed: int):
    """The spliced model with random weights (fp32) and its processor, from the sources' configs alone."""
    from transformers import AutoConfig, SmolVLMForConditionalGeneration

    from smvl.data.batches.pixels import normalise_on_model
    from smvl.splice.model import spliced_config
    from smvl.splice.processor import build_processor
    from smvl.splice.sources import resolve

    vision_dir, text_dir = resolve(vision), resolve(text)
    vlm = AutoConfig.from_pretrained(vision_dir)
    overrides = {}
    if text_layers:
        overrides = {"num_hidden_layers": text_layers, "layer_types": ["full_attention"] * text_layers}
    llm = AutoConfig.from_pretrained(text_dir, **overrides)
    if vision_layers:
        vlm.vision_config.num_hidden_layers = vision_layers
    scale = getattr(vlm, "scale_factor", 2)
    processor = build_processor(vision_dir, text_dir, vlm.vision_config, scale)
    config = spliced_config(vlm, llm, processor.tokenizer, scale, "fp32")
    torch.manual_seed(seed)
    return normalise_on_model(SmolVLMForConditionalGeneration(config), processor.image_processor), processor


def reference_step(model, enc, pad_id: int, labels: str) -> tuple[float, int]:
    """One step of the hand-written recipe; returns (summed loss, labelled tokens)."""
    from smvl.data.batches.collate import CollateOptions, collate
    from smvl.data.batches.pixels import require_normaliser

    batch = collate([enc], pad_id, CollateOptions(max_length=2048, padding="max_length", labels=labels))
    batch = {k: v.to(model.device) for k, v in batch.items()}
    require_normaliser(model, batch)
    loss = model(**batch, use_cache=False).loss
    loss.backward()
    count = int((batch["labels"][:, 1:] != -100).sum())
    return loss.item() * count, count


def our_step(model, encs, chunk: int) -> tuple[float, int]:
    from smvl.data.batches.pack import pack
    from smvl.train.loss import labelled_loss

    batch = {k: v.to(model.device) if torch.is_tensor(v) else v for k, v in pack(encs).items()}
    total, count = labelled_loss(model, batch, chunk)
    (total / count).backward()
    return total.item(), int(count)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Phase:
    """Accumulates one recipe's time, samples, tokens, loss and peak memory over the rounds."""

    def __init__(self, model, attention: dict, step):
        self.model, self.attention, self.step = model, attention, step
        self.seconds = self.samples = self.tokens = self.peak = self.flops = 0
        self.loss_sum, self.labelled = 0.0, 0

    def run(self, optimizer, items, timed: bool = True, count_flops: bool = False) -> None:
        from torch.utils.flop_counter import FlopCounterMode

        from smvl.bench.memory import PeakMemory

        self.model.set_attn_implementation(self.attention)
        device = self.model.device
        counter = FlopCounterMode(display=False) if count_flops else None
        sync(device)
        with PeakMemory(device) as memory, counter or nullcontext(), countable_attention(count_flops):
            start = time.perf_counter()
            results = []
            for item in items:
                results.append(self.step(item))
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            sync(device)
            seconds = time.perf_counter() - start
        if counter is not None:
            self.flops = counter.get_total_flops() / sum(_count(i) for i in items)
        if not timed:
            return
        self.seconds += seconds
        self.samples += sum(_count(i) for i in items)
        self.tokens += sum(_tokens(i) for i in items)
        self.loss_sum += sum(r[0] for r in results)
        self.labelled += sum(r[1] for r in results)
        self.peak = max(self.peak, memory.peak)

    def summary(self) -> dict:
        return {"samples_per_s": self.samples / self.seconds, "tokens_per_s": self.tokens / self.seconds,
                "peak_memory_gb": self.peak / 2**30, "mean_loss": self.loss_sum / self.labelled,
                "seconds": self.seconds, "tflop_per_sample": self.flops / 1e12 if self.flops else None}


@contextmanager
def countable_attention(counting: bool):
    """While FLOPs are counted, attention takes the plain SDPA path with key/value heads repeated up to the query
    heads (transformers' own path where GQA is not used), one call per packed sample: the same arithmetic, in
    calls that torch's counter can count. Its sdpa formula asserted equal head counts in torch 2.11 (seen on a GPU
    machine), and the varlen kernel's one-time check (train/attention.py) must not run, and fail, under it."""
    if not counting:
        yield
        return
    from unittest import mock

    with mock.patch("transformers.integrations.sdpa_attention.use_gqa_in_sdpa", lambda *args, **kwargs: False), \
            mock.patch("smvl.train.attention._varlen_usable", lambda *args, **kwargs: False):
        yield


def _count(item) -> int:
    return len(item) if isinstance(item, list) else 1


def _tokens(item) -> int:
    return sum(len(e.input_ids) for e in item) if isinstance(item, list) else len(item.input_ids)


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def bench_train(vision: str | None = None, text: str | None = None, text_layers: int | None = None,
                vision_layers: int | None = None, samples: int = 16, pack_tokens: int = 2048, labels: str = "all",
                recipe: str = "connector", device: str = "auto", dtype: str = "fp32", chunk: int = 256,
                seed: int = 0, count_flops: bool = False) -> dict:
    from smvl.bench.memory import settle_allocator
    from smvl.bench.samples import bench_samples
    from smvl.data.batches.pack import budget_batches
    from smvl.splice.recipes import apply_recipe
    from smvl.train.attention import training_attention
    from smvl.train.trainer import set_use_cache

    if samples < 1 or pack_tokens < 1:
        raise UserError("--samples and --pack-tokens must be at least 1")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       "cpu" if device == "auto" else device)
    if dev.type == "cpu":
        settle_allocator()
    model, processor = bench_model(vision or default_source("vision"), text or default_source("text"),
                                   text_layers, vision_layers, seed)
    model.to(dev, {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype])
    set_use_cache(model, False)
    apply_recipe(model, recipe)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.0)
    encs = bench_samples(processor, samples, seed, labels)
    pad_id = processor.tokenizer.pad_token_id

    reference = Phase(model, {"text_config": "eager", "vision_config": "eager"},
                      lambda e: reference_step(model, e, pad_id, labels))
    ours = Phase(model, training_attention("auto"), lambda es: our_step(model, es, chunk))
    rounds = budget_batches(encs, pack_tokens)
    warm_up = rounds if count_flops else rounds[-1:]  # the shortest row, or every row while counting FLOPs
    reference.run(optimizer, [e for row in warm_up for e in row], timed=False, count_flops=count_flops)
    ours.run(optimizer, warm_up, timed=False, count_flops=count_flops)
    for k, chunk_of_samples in enumerate(rounds):
        pair = [(reference, chunk_of_samples), (ours, [chunk_of_samples])]
        for phase, items in pair if k % 2 == 0 else pair[::-1]:
            phase.run(optimizer, items)

    ref, us = reference.summary(), ours.summary()
    result = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "dtype": dtype, "recipe": recipe, "labels": labels, "samples": samples, "pack_tokens": pack_tokens,
        "steps": len(rounds),
        "text_layers": model.config.text_config.num_hidden_layers,
        "vision_layers": model.config.vision_config.num_hidden_layers,
        "vocab": model.config.text_config.vocab_size,
        "mean_tiles": sum(e.pixel_values.shape[0] for e in encs) / samples,
        "mean_text_tokens": sum(len(e.input_ids) - e.image_tokens for e in encs) / samples,
        "mean_tokens": sum(len(e.input_ids) for e in encs) / samples,
        "reference": ref, "smvl": us,
        "throughput_ratio": us["samples_per_s"] / ref["samples_per_s"],
        "memory_ratio": us["peak_memory_gb"] / ref["peak_memory_gb"],
        "loss_rel_diff": abs(us["mean_loss"] - ref["mean_loss"]) / abs(ref["mean_loss"]),
    }
    peak = peak_tflops(dev)
    if peak and count_flops:
        for name in ("reference", "smvl"):
            r = result[name]
            r["mfu"] = r["samples_per_s"] * r["tflop_per_sample"] / peak
    return result


def report(r: dict) -> str:
    memory = "peak allocated" if r["device"] != "cpu" else "peak RSS"
    lines = [
        f"device {r['device']}, {r['dtype']}, recipe {r['recipe']}, labels {r['labels']}; text layers "
        f"{r['text_layers']}, vision layers {r['vision_layers']}, vocab {r['vocab']}",
        f"{r['samples']} samples: mean {r['mean_tiles']:.1f} tiles, {r['mean_text_tokens']:.0f} text tokens, "
        f"{r['mean_tokens']:.0f} tokens in all; ours packs them into {r['steps']} rows of <= {r['pack_tokens']}",
        f"{'':10} {'samples/s':>10} {'tokens/s':>10} {memory + ' GB':>16} {'mean loss':>11} {'TFLOP/sample':>13}"
        + ("  MFU" if "mfu" in r["smvl"] else ""),
    ]
    for name in ("reference", "smvl"):
        p = r[name]
        mfu = f"  {p['mfu']:.1%}" if "mfu" in p else ""
        flops = f"{p['tflop_per_sample']:>13.3f}" if p["tflop_per_sample"] else f"{'-':>13}"
        lines.append(f"{name:10} {p['samples_per_s']:>10.3f} {p['tokens_per_s']:>10.1f} {p['peak_memory_gb']:>16.2f} "
                     f"{p['mean_loss']:>11.6f} {flops}{mfu}")
    lines.append(f"throughput x{r['throughput_ratio']:.2f}, memory x{r['memory_ratio']:.2f}, "
                 f"loss relative difference {r['loss_rel_diff']:.2e}")
    return "\n".join(lines)


def cmd_train(args) -> int:
    result = bench_train(args.vision, args.text, args.text_layers, args.vision_layers, args.samples, args.pack_tokens,
                         args.labels, args.recipe, args.device, args.dtype, args.chunk, args.seed, args.count_flops)
    print(json.dumps(result) if args.json else report(result))
    return 0


def register(bench_sub) -> None:
    p = bench_sub.add_parser("train", help="our training step vs the hand-written reference recipe, same samples")
    p.add_argument("--vision", help="vision source (folder or hub id; default ../shared/assets/...)")
    p.add_argument("--text", help="text LLM source (folder or hub id; default ../shared/assets/...)")
    p.add_argument("--text-layers", type=int, help="keep only this many decoder layers (real widths and vocab)")
    p.add_argument("--vision-layers", type=int, help="keep only this many vision encoder layers")
    p.add_argument("--samples", type=int, default=16, help="samples timed per recipe")
    p.add_argument("--pack-tokens", type=int, default=2048, help="tokens per packed row (one of our steps)")
    p.add_argument("--labels", default="all", choices=["all", "assistant"], help="label policy of both recipes")
    p.add_argument("--recipe", default="connector", choices=["connector", "vision+connector", "full"])
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--chunk", type=int, default=256, help="rows of logits per chunk in our loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count-flops", action="store_true",
                   help="an untimed pass over every sample under torch's FLOP counter first (TFLOP/sample, MFU)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_train)
