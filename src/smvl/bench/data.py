"""`smvl bench data`: the data pipeline's stock image path against smvl's fast one, side by side, on one generated
set with the_cauldron's size mix (`bench/dataset.py`) and the real pair's processor settings.

- stock: full JPEG decodes, then transformers' SmolVLM image processor (its torchvision backend, the default that
  `AutoImageProcessor` loads) per sample, float tiles concatenated into the batch;
- fast: JPEGs decoded at reduced scale where that changes nothing (`FastTiler.decode_size`), one resize per image
  (`data/batches/tiles.py`), uint8 tiles in the batch: the model normalises them on its device (`data/batches/pixels.py`), so
  that work is not in these timings.
Both paths first encode the same samples once to show they agree (token counts, tile grids, pixel difference).
After one untimed warm-up pass of each, timed runs alternate the two paths round by round, all in-process rounds before
the worker rounds; in-process runs use one torch thread, as a DataLoader worker does, and report the CPU time per
stage. Rates are given per wall second and per CPU second: on a shared machine the wall clock also counts other
programs' turns on the cores, the CPU clock only this work.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from smvl.errors import UserError


def real_processor(vision: str | None, text: str | None):
    from transformers import AutoConfig

    from smvl.bench.train import default_source
    from smvl.splice.processor import build_processor
    from smvl.splice.sources import resolve

    vision_dir, text_dir = resolve(vision or default_source("vision")), resolve(text or default_source("text"))
    vlm = AutoConfig.from_pretrained(vision_dir)
    return build_processor(vision_dir, text_dir, vlm.vision_config, getattr(vlm, "scale_factor", 2))


def agreement(folder: str, processor, samples: int) -> dict:
    """Encode `samples` samples both ways: whether token ids and grids agree, and how far the pixels are apart
    (normalised units, where the pixel range is 2)."""
    from smvl.data.batches.collate import CollateOptions, Encoder
    from smvl.data.samples.lazy import decode
    from smvl.data.sources import open_source

    stock = Encoder(processor, CollateOptions(fast_images=False))
    fast = Encoder(processor, CollateOptions())
    same, diffs, worst, tiles = True, [], 0.0, []
    for record in open_source(folder, max_samples=samples, holdout=0, lazy=True):
        a = stock(decode(_copy(record)))
        b = fast(decode(record, fast.decode_size))
        same &= a.input_ids == b.input_ids and a.tiles == b.tiles and a.pixel_values.shape == b.pixel_values.shape
        if a.pixel_values.shape == b.pixel_values.shape:
            d = (a.pixels() - b.pixels()).abs()
            diffs.append(float(d.mean()))
            worst = max(worst, float(d.max()))
        tiles.append(a.pixel_values.shape[0])
    return {"samples": len(tiles), "same_tokens_and_tiles": bool(same), "mean_abs_diff": max(diffs, default=0.0),
            "max_abs_diff": worst, "mean_tiles": statistics.mean(tiles) if tiles else 0.0}


def _copy(sample):
    from dataclasses import replace

    return replace(sample, images=list(sample.images))


def bench_data(folder: str, processor, samples: int, workers: list[int], repeats: int) -> dict:
    from smvl.data.inspect import bench_run

    runs = {(path, w): [] for path in ("stock", "fast") for w in [0, *workers]}
    # Untimed, each path once: grows this process's heap to its high-water mark, as a long-running loader's is
    # (`data/batches/heap.py`), so neither path's first timed run pays for page faults the other's would not; workers are
    # forked from it.
    for fast in (False, True):
        bench_run(folder, processor, samples, 0, fast=fast)
    # Every in-process round before the first worker run: forking a worker write-protects this process's whole heap
    # (GBs, after the stock path's float tiles), and the next in-process run then took a page fault on every page it
    # wrote (~1M faults, 0.8 s of system time for the stock path, 0.2 s for the fast one), so each later round's
    # ratio depended on which path it ran first (x2.95-x4.12 in one run).
    for w in [0, *workers]:
        for r in range(repeats):
            for path in (("stock", "fast") if r % 2 == 0 else ("fast", "stock")):
                runs[path, w].append(bench_run(folder, processor, samples, w, fast=path == "fast"))
    out = {"folder": folder, "samples": samples, "repeats": repeats, "paths": {}}
    for (path, w), rs in runs.items():
        entry = {"workers": w, "samples_per_s": [r.per_s for r in rs], "per_worker": [r.per_worker for r in rs],
                 "samples_per_cpu_s": [r.per_cpu_s for r in rs], "skipped": rs[0].skipped}
        if w == 0:
            entry["cpu_ms_per_sample"] = {k: statistics.median(1000 * r.stages.get(k, 0) / r.samples for r in rs)
                                          for k in rs[0].stages}
        out["paths"][f"{path}/{w}"] = entry
    ratio = [f.per_cpu_s / s.per_cpu_s for s, f in zip(runs["stock", 0], runs["fast", 0])]
    wall = [f.per_s / s.per_s for s, f in zip(runs["stock", 0], runs["fast", 0])]
    out["speedup_cpu"], out["speedup_wall"] = ratio, wall
    return out


def _mm(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f}"


def report(r: dict, agree: dict, what: str) -> str:
    from smvl.data.inspect import STAGES

    lines = [f"bench set {r['folder']}: {r['samples']} samples, {agree['mean_tiles']:.1f} tiles each on average",
             f"processor: {what}",
             f"same token ids and tile grids on {agree['samples']} samples: "
             f"{'yes' if agree['same_tokens_and_tiles'] else 'NO'}; pixels (normalised units, range 2): mean |diff| "
             f"at most {agree['mean_abs_diff']:.5f} per sample, max {agree['max_abs_diff']:.3f}",
             f"in-process, one torch thread (min / median of {r['repeats']} runs):",
             f"  {'path':<6} {'samples/s':>13} {'samples/CPU-s':>15}   CPU ms/sample: "
             + " ".join(f"{s:>11}" for s in STAGES)]
    for path in ("stock", "fast"):
        p = r["paths"][f"{path}/0"]
        lines.append(f"  {path:<6} {_mm(p['samples_per_s']):>13} {_mm(p['samples_per_cpu_s']):>15}   "
                     f"{'':14}" + " ".join(f"{p['cpu_ms_per_sample'].get(s, 0):>11.1f}" for s in STAGES))
    lines.append(f"speed-up fast/stock: x{statistics.median(r['speedup_cpu']):.2f} per CPU second "
                 f"(min x{min(r['speedup_cpu']):.2f}), x{statistics.median(r['speedup_wall']):.2f} per wall second")
    for key, p in r["paths"].items():
        if p["workers"]:
            lines.append(f"{key.split('/')[0]:<6} with {p['workers']} worker(s): {_mm(p['samples_per_s'])} samples/s, "
                         f"{_mm(p['per_worker'])} per worker, {_mm(p['samples_per_cpu_s'])} per CPU second "
                         f"(min / median)")
    return "\n".join(lines)


def cmd_data(args) -> int:
    from smvl.bench.dataset import write_bench_set
    from smvl.splice.presets import cache_dir
    from smvl.splice.processor import describe

    if args.samples < 1 or args.repeats < 1 or args.check < 1:
        raise UserError("--samples, --repeats and --check must be at least 1")
    folder = Path(args.out) if args.out else cache_dir() / "bench-data"
    write_bench_set(folder, args.samples, args.seed)
    processor = real_processor(args.vision, args.text)
    agree = agreement(str(folder), processor, min(args.samples, args.check))
    result = bench_data(str(folder), processor, args.samples, args.workers, args.repeats)
    result["agreement"] = agree
    print(json.dumps(result) if args.json else report(result, agree, describe(processor)))
    return 0


def _counts(text: str) -> list[int]:
    import argparse

    try:
        counts = [int(x) for x in text.split(",") if x]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected worker counts of at least 1, like 1,2")
    return counts


def register(bench_sub) -> None:
    p = bench_sub.add_parser("data", help="data pipeline: stock image path vs smvl's fast path on a the_cauldron mix")
    p.add_argument("--out", help="folder for the generated set (default: the smvl cache); reused when it matches")
    p.add_argument("--samples", type=int, default=64, help="samples in the set, all timed each run (default 64)")
    p.add_argument("--workers", type=_counts, default=[1, 2], help="DataLoader worker counts to time (default 1,2)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each path and worker count (min and median)")
    p.add_argument("--check", type=int, default=16, help="samples encoded both ways to compare (default 16)")
    p.add_argument("--vision", help="vision source whose processor config to use (default ../shared/assets/...)")
    p.add_argument("--text", help="text LLM source whose tokenizer to use (default ../shared/assets/...)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_data)
