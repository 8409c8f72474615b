"""`smvl bench serve`: completion tokens/s, time to first token and latency of `smvl serve` under concurrent clients.

Starts `smvl serve` on a free loopback port in a subprocess (its own interpreter, as a real server has), or
targets `--url`. Clients are the official `openai` package (async, streaming, so the first token is timed).
Every request is an image and a question and generates exactly `--max-tokens` tokens (vLLM's `min_tokens` and
`ignore_eos`), so the benchmark measures generation, not how soon the model stops.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from smvl.errors import UserError

QUESTION = "请详细描述这张图片。"


def image_url(i: int, size: int = 512) -> str:
    """A gradient tinted per request, so that concurrent requests are not all the same prompt."""
    from PIL import Image

    grey = Image.linear_gradient("L").resize((size, size))
    tint = Image.new("L", (size, size), (37 * i) % 256)
    buf = io.BytesIO()
    Image.merge("RGB", (grey, tint, grey.rotate(90))).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def messages(url: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": QUESTION}]}]


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


async def one_request(client, model: str, url: str, max_tokens: int) -> dict:
    start = time.perf_counter()
    first, tokens = None, 0
    stream = await client.chat.completions.create(
        model=model, messages=messages(url), max_tokens=max_tokens, stream=True,
        stream_options={"include_usage": True}, extra_body={"min_tokens": max_tokens, "ignore_eos": True})
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - start
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    total = time.perf_counter() - start
    return {"first": first if first is not None else total, "total": total, "tokens": tokens}


async def run_level(url: str, api_key: str, model: str, concurrency: int, requests: int, max_tokens: int) -> dict:
    """`requests` requests, at most `concurrency` at a time (each client sends its next as soon as one ends)."""
    from openai import AsyncOpenAI

    gate = asyncio.Semaphore(concurrency)
    errors: list[str] = []
    urls = [image_url(i) for i in range(requests)]  # made before the clock starts, as a client has its images

    async with AsyncOpenAI(base_url=url + "/v1", api_key=api_key, max_retries=0, timeout=600) as client:
        async def gated(i: int):
            async with gate:
                try:
                    return await one_request(client, model, urls[i], max_tokens)
                except Exception as exc:  # counted and shown; the level goes on
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return None

        await one_request(client, model, urls[0], 2)  # warm-up: connections, allocator, lazy init
        start = time.perf_counter()
        done = [r for r in await asyncio.gather(*[gated(i) for i in range(requests)]) if r]
        seconds = time.perf_counter() - start
    tokens = sum(r["tokens"] for r in done)
    firsts, totals = [r["first"] for r in done], [r["total"] for r in done]
    return {"concurrency": concurrency, "requests": requests, "errors": len(errors), "error": errors[:1],
            "completion_tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
            "ttft_p50": percentile(firsts, 50), "ttft_p95": percentile(firsts, 95),
            "latency_p50": percentile(totals, 50), "latency_p95": percentile(totals, 95)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen | None, timeout: float) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise UserError(f"smvl serve exited with status {process.returncode} before answering (its messages "
                            "are above)")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise UserError(f"{url}/health did not answer within {timeout:g} s")


def start_server(args, levels: list[int]) -> tuple[str, subprocess.Popen]:
    port = free_port()
    command = [sys.executable, "-m", "smvl", "serve", args.model, "--port", str(port), "--dtype", args.dtype,
               "--device", args.device, "--queue-depth", str(max(16, max(levels))),
               "--max-tokens", str(max(1024, args.max_tokens)), "--log-level", "warning"]
    if args.max_batch is not None:
        command += ["--max-batch", str(args.max_batch)]
    # The server runs this copy of smvl, wherever it was imported from (a checkout's src/ or site-packages).
    here = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
    env.pop("SMVL_API_KEY", None)
    return f"http://127.0.0.1:{port}", subprocess.Popen(command, env=env)


def model_id(url: str, api_key: str) -> str:
    import httpx

    response = httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
    if response.status_code != 200:
        raise UserError(f"{url}/v1/models answered {response.status_code}: {response.text[:200]}")
    return response.json()["data"][0]["id"]


def bench_serve(args, levels: list[int]) -> dict:
    process = None
    url = args.url.rstrip("/") if args.url else None
    api_key = (args.api_key or os.environ.get("SMVL_API_KEY") or "unused") if url else "unused"
    try:
        if url is None:
            url, process = start_server(args, levels)
        wait_healthy(url, process, args.start_timeout)
        model = model_id(url, api_key)
        rows = [asyncio.run(run_level(url, api_key, model, c, args.requests, args.max_tokens)) for c in levels]
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    base = next((r["tokens_per_s"] for r in rows if r["concurrency"] == 1), rows[0]["tokens_per_s"])
    for r in rows:
        r["speedup"] = r["tokens_per_s"] / base if base else float("nan")
    return {"url": args.url or "smvl serve (started for this run)", "model": model, "max_tokens": args.max_tokens,
            "levels": rows}


def table(result: dict) -> str:
    lines = [f"{result['model']} at {result['url']}: {result['max_tokens']} completion tokens per request "
             "(min_tokens + ignore_eos), image + text, streamed",
             f"{'concurrency':>11} {'requests':>8} {'tokens':>7} {'tokens/s':>9} {'x c1':>6} "
             f"{'TTFT p50':>9} {'TTFT p95':>9} {'latency p50':>12} {'latency p95':>12} {'errors':>6}"]
    for r in result["levels"]:
        lines.append(f"{r['concurrency']:>11} {r['requests']:>8} {r['completion_tokens']:>7} "
                     f"{r['tokens_per_s']:>9.1f} {r['speedup']:>6.2f} {r['ttft_p50'] * 1000:>6.0f} ms "
                     f"{r['ttft_p95'] * 1000:>6.0f} ms {r['latency_p50']:>10.2f} s {r['latency_p95']:>10.2f} s "
                     f"{r['errors']:>6}")
    for r in result["levels"]:
        if r["error"]:
            lines.append(f"concurrency {r['concurrency']}: first error: {r['error'][0]}")
    return "\n".join(lines)


def concurrency_levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise UserError(f"--concurrency {text!r}: give positive integers separated by commas, e.g. 1,8,32")
    return levels


def cmd_serve(args) -> int:
    import importlib.util

    if importlib.util.find_spec("openai") is None:
        raise UserError("the openai package is not installed (pip install 'smvl[serve]' or pip install openai)")
    levels = concurrency_levels(args.concurrency)
    if args.requests < 1 or args.max_tokens < 1 or (args.max_batch is not None and args.max_batch < 1):
        raise UserError("--requests, --max-tokens and --max-batch must be at least 1")
    if args.url is None and not os.path.exists(args.model) and args.model.count("/") != 1:  # nor a hub id
        raise UserError(f"{args.model}: no such model folder")
    result = bench_serve(args, levels)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 1 if any(r["errors"] for r in result["levels"]) else 0


def register(bench_sub) -> None:
    from smvl.infer.commands import add_model_args

    p = bench_sub.add_parser("serve", help="tokens/s, time to first token and latency of `smvl serve` under "
                                           "concurrent clients")
    add_model_args(p)
    p.add_argument("--concurrency", default="1,8,32", help="client counts to measure, comma-separated (default: "
                                                          "1,8,32)")
    p.add_argument("--requests", type=int, default=32, help="requests per concurrency level (default: 32)")
    p.add_argument("--max-tokens", type=int, default=64, help="tokens generated per request, forced (default: 64)")
    p.add_argument("--max-batch", type=int, help="the started server's --max-batch (default: its own)")
    p.add_argument("--url", help="a running server to measure instead of starting one (MODEL is then only a label)")
    p.add_argument("--api-key", help="for --url (default: $SMVL_API_KEY)")
    p.add_argument("--start-timeout", type=float, default=300.0, help="seconds to wait for the server's /health")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_serve)
