"""The ``lora-router`` command: a thin layer over ``config``, ``Router`` and ``Simulator``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from ._native import PlanError
from .config import build_plan, load_config
from .errors import LoraRouterError

log = logging.getLogger("lora_router")


def _setup_logging(verbose: bool = False) -> None:
    level = os.environ.get("LORA_ROUTER_LOG", "DEBUG" if verbose else "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


# --- serve -------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import signal

    from .config.changes import summary
    from .router import Router
    from .runloop import Signals

    router = Router(args.config, threads=args.threads)
    mcp = router.config.classifier.mcp_category_model
    # Give the MCP server a moment to list its categories, so the first requests route by it;
    # a server that is down does not hold the router back (it keeps reconnecting).
    if mcp is not None and mcp.enabled and not router.wait_ready(mcp.timeout_seconds):
        log.warning("the MCP classifier is not connected yet; requests route on the other signals until it is")
    host, port = router.start(args.host, args.port)
    c = router.config
    log.info(
        "lora-router serving on http://%s:%d: %d categories, %d adapters, %d endpoints",
        host,
        port,
        len(router.plan["categories"]),
        sum(len(m.loras) for m in c.models.values()),
        len(c.vllm_endpoints),
    )

    def reload() -> None:
        try:
            report = router.reload(args.config)
            log.info("reloaded %s: %s", args.config, summary(report))
        except (LoraRouterError, PlanError) as e:
            log.error("reload of %s refused, the running config stays: %s", args.config, e)
        except Exception as e:  # whatever went wrong, the running config stays
            log.exception("reload of %s failed, the running config stays: %s: %s", args.config, type(e).__name__, e)

    signals = Signals(on_hangup=reload)
    signum = signals.wait()
    router.begin_drain()
    delay = router.config.server.drain_delay_s
    if signum == signal.SIGTERM and delay > 0:
        log.info("SIGTERM: not ready any more; serving %g s more so load balancers notice, then draining", delay)
        if signals.wait_again(delay) is not None:
            log.info("a second signal: draining now")
    drain = router.config.server.timeouts.drain_s
    log.info("draining: no new connections; requests in flight get up to %g s", drain)
    router.stop()
    signals.restore()
    log.info("stopped")
    return 0


# --- check -------------------------------------------------------------------------------


def describe(loaded) -> str:
    c = loaded.config
    plan = build_plan(loaded)
    lines = [f"config OK: {loaded.file}", "", f"endpoints ({len(c.vllm_endpoints)}):"]
    for e in c.vllm_endpoints:
        lines.append(f"  {e.name:<20} {e.address}:{e.port}  weight {e.weight:g}")
    lines.append(f"base models ({len(plan['models'])}), default {c.default_model}:")
    for m in plan["models"]:
        fam = m["reasoning"]
        reasoning = f"{fam['type']}:{fam['parameter']}" if fam else "none"
        lines.append(f"  {m['name']:<20} endpoints: {', '.join(m['endpoints'])}  reasoning: {reasoning}")
        adapters = ", ".join(a["name"] for a in m["adapters"]) or "(none)"
        lines.append(f"  {'':<20} adapters: {adapters}")
    lines.append(f"categories ({len(plan['categories'])}), default {plan['default_category']}:")
    for cat in plan["categories"]:
        t = max(cat["targets"], key=lambda t: t["score"])
        dest = f"{t['model']} + {t['adapter']}" if t["adapter"] else f"{t['model']} (base)"
        reasoning = {None: "", True: f", reasoning {t['reasoning_effort']}", False: ", no reasoning"}[
            t["use_reasoning"]
        ]
        prompt = f", system prompt ({cat['system_prompt_mode']})" if cat["system_prompt"] else ""
        lines.append(f"  {cat['name']:<20} -> {dest} (score {t['score']:g}{reasoning}{prompt})")
    lines.append(
        "signals, in order:" if plan["signals"] else "signals: none (every MoM request takes the default category)"
    )
    for s in plan["signals"]:
        if s["type"] == "keyword":
            n = sum(len(r["keywords"]) for r in s["rules"])
            lines.append(f"  keyword: {len(s['rules'])} rules, {n} keywords")
        elif s["type"] == "embedding":
            texts = sum(len(c["texts"]) for c in s["categories"])
            lines.append(
                f"  embedding: {s['model']['name']}, {len(s['categories'])} categories, {texts} texts, {s['method']}"
                f"{' (whitened)' if s['whiten'] and s['method'] == 'centroid' else ''}, threshold {s['threshold']:g}, "
                f"margin {s['margin']:g}, temperature {s['temperature']:g}"
            )
        elif s["type"] == "domain":
            mapped = [x for x in s["labels"] if x]
            lines.append(
                f"  domain: {s['model']['model']}, {len(s['labels'])} labels ({len(mapped)} are categories), "
                f"threshold {s['threshold']:g}"
            )
    if plan["tenants"]:
        lines.append(f"tenants ({len(plan['tenants'])}), API keys required:")
        for t in plan["tenants"]:
            limits = ", ".join(f"{k} {t[k]}" for k in ("rpm", "tpm") if t[k]) or "no limits"
            lines.append(
                f"  {t['name']:<20} {len(t['keys'])} keys, adapters: {', '.join(t['adapters']) or '(none)'}, "
                f"intent routing {'on' if t['intent_routing'] else 'off'}, {limits}"
            )
    else:
        lines.append("tenants: none (authentication off)")
    for e in plan["experiments"]:
        scope = f"tenant {e['tenant']}" if e["tenant"] else f"category {e['category']}"
        arms = ", ".join(f"{a['adapter']} {a['weight']:g}" for a in e["arms"])
        shadow = f", shadow {e['shadow']['adapter']} {e['shadow']['share']:g}" if e["shadow"] else ""
        lines.append(f"experiment {e['name']} ({scope}): {arms}{shadow}")
    if loaded.warnings:
        lines.append("warnings:")
        lines.extend(f"  - {w}" for w in loaded.warnings)
    return "\n".join(lines)


def cmd_check(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    # Compile the plan natively too, so everything that would fail at start fails here.
    from .router import Router

    Router(loaded)
    print(describe(loaded))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from .keys import hash_key

    key = sys.stdin.readline().strip() if args.key == "-" else args.key
    if not key:
        print("lora-router keys: the key is empty", file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0


# --- sim ---------------------------------------------------------------------------------


def parse_lora_modules(items: list[str]) -> dict[str, str]:
    """vLLM's ``--lora-modules``: ``name=path`` or a JSON object with ``name`` and ``path``."""
    out: dict[str, str] = {}
    for item in items:
        if item.lstrip().startswith("{"):
            try:
                obj = json.loads(item)
                out[obj["name"]] = obj["path"]
            except (ValueError, KeyError, TypeError):
                raise SystemExit(f"lora-router sim: invalid --lora-modules entry {item!r}") from None
        elif "=" in item:
            name, path = item.split("=", 1)
            out[name] = path
        else:
            raise SystemExit(f"lora-router sim: --lora-modules entries look like name=path, got {item!r}")
    return out


def cmd_sim(args: argparse.Namespace) -> int:
    from .runloop import wait_for_signal
    from .sim import Simulator, SimulatorOptions

    allow = args.allow_runtime_lora_updating or os.environ.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "").lower() in (
        "1",
        "true",
    )
    options = SimulatorOptions(
        served_model_name=args.served_model_name,
        model_path=args.model_path,
        lora_modules=parse_lora_modules(args.lora_modules or []),
        max_loras=args.max_loras,
        max_lora_rank=args.max_lora_rank,
        max_model_len=args.max_model_len,
        max_num_seqs=args.max_num_seqs,
        allow_runtime_lora_updating=allow,
        ttft_ms=args.ttft_ms,
        itl_ms=args.itl_ms,
        lora_load_ms=args.lora_load_ms,
        default_max_tokens=args.default_max_tokens,
        record_requests=args.record_requests,
    )
    try:
        sim = Simulator(options, threads=args.threads)
    except ValueError as e:
        print(f"lora-router sim: {e}", file=sys.stderr)
        return 2
    host, port = sim.start(args.host, args.port)
    adapters = ", ".join(options.lora_modules) or "none"
    print(
        f"lora-router sim: vLLM SIMULATOR (test/demo tool, not an inference engine) serving "
        f"'{options.served_model_name}' (adapters: {adapters}; max_loras {options.max_loras}; "
        f"runtime LoRA updating {'on' if allow else 'off'}) on http://{host}:{port}",
        file=sys.stderr,
        flush=True,
    )
    last = [time.monotonic(), 0.0]

    def report() -> None:
        if args.report_interval <= 0 or time.monotonic() - last[0] < args.report_interval:
            return
        n = sim.stats()["requests"]
        now = time.monotonic()
        rate = (n - last[1]) / (now - last[0])
        last[:] = [now, n]
        if rate > 0:
            print(f"lora-router sim: {rate:,.0f} requests/s", file=sys.stderr, flush=True)

    wait_for_signal(tick=report)
    stats = sim.stats()
    sim.stop()
    rate = stats["requests"] / max(stats["uptime_s"], 1e-9)
    print(
        f"lora-router sim: served {stats['requests']:.0f} requests ({rate:,.0f}/s over its lifetime), "
        f"{stats['lora_loads']:.0f} adapter loads, {stats['cancelled']:.0f} cancelled",
        file=sys.stderr,
    )
    return 0


# --- classify / eval / train / models ---------------------------------------------------------


def cmd_classify(args: argparse.Namespace) -> int:
    from .router import Router

    router = Router(args.config)
    if args.input is None:
        if args.text is None:
            raise SystemExit("lora-router classify: give a text or --input FILE.jsonl")
        print(json.dumps(router.classify(args.text), ensure_ascii=False, indent=2))
        return 0
    failures = 0
    with open(args.input, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = row["text"] if isinstance(row, dict) else None
                if not isinstance(text, str):
                    raise ValueError('expected {"text": "..."}')
                out = router.classify(text)
            except (ValueError, KeyError) as e:
                failures += 1
                out = {"line": n, "error": str(e)}
            print(json.dumps(out, ensure_ascii=False), flush=False)
    sys.stdout.flush()
    if failures:
        print(f"lora-router classify: {failures} line(s) could not be classified", file=sys.stderr)
    return 1 if failures else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, render
    from .router import Router

    report = evaluate(Router(args.config), args.labelled)
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else render(report))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    report = train(load_config(args.config), args.labelled, args.out, model=args.model)
    held = report["holdout_accuracy"]
    print(
        f"trained a {len(report['labels'])}-label classifier on {report['examples']} examples with {report['encoder']} "
        f"in {report['seconds_total']} s: train accuracy {report['train_accuracy']:.1%}"
        + (f", held-out accuracy {held:.1%} ({report['holdout_examples']} examples)" if held is not None else "")
        + f"\nwrote {report['out']} (model.onnx, tokenizer.json, category_mapping.json); "
        "use it as classifier.category_model.model_id"
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from . import models

    if args.action == "list":
        for name, spec in models.SHIPPED.items():
            built = (models.cache_dir() / name / "lora_router_model.json").is_file()
            print(f"{name:<24} {'built' if built else 'not built':<10} {spec.description}")
        print(f"cache: {models.cache_dir()}")
        return 0
    for name in args.names or list(models.SHIPPED):
        m = models.ensure(name)
        print(f"{name}: {m.path}")
    return 0


# --- the command line --------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lora-router",
        description="An OpenAI-compatible gateway that routes each request to the right vLLM LoRA adapter.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (or set LORA_ROUTER_LOG)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run the router")
    s.add_argument("--config", required=True, type=Path, help="YAML config (Semantic Router v0.1 format)")
    s.add_argument("--host", help="listen address (default: server.host, 0.0.0.0)")
    s.add_argument("--port", type=int, help="listen port (default: server.port, 8801)")
    s.add_argument("--threads", type=int, help="native worker threads (default: server.threads; 0 = one per core)")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("check", help="validate a config and summarise it")
    s.add_argument("--config", required=True, type=Path)
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("sim", help="run a vLLM simulator (test and demo tool)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--served-model-name", default="sim-base")
    s.add_argument("--model-path", help="shown as the base model's root (default: the served name)")
    s.add_argument("--lora-modules", nargs="*", metavar="NAME=PATH", help="static adapters, as vLLM's flag")
    s.add_argument("--max-loras", type=int, default=1, help="GPU LoRA slots (vLLM default 1)")
    s.add_argument("--max-lora-rank", type=int, default=16)
    s.add_argument("--max-model-len", type=int, default=2048)
    s.add_argument("--max-num-seqs", type=int, default=256)
    s.add_argument(
        "--allow-runtime-lora-updating",
        action="store_true",
        help="enable /v1/load_lora_adapter and /v1/unload_lora_adapter (or VLLM_ALLOW_RUNTIME_LORA_UPDATING=true)",
    )
    s.add_argument("--ttft-ms", type=float, default=5.0, help="time to first token")
    s.add_argument("--itl-ms", type=float, default=1.0, help="time between tokens")
    s.add_argument("--lora-load-ms", type=float, default=20.0, help="time to load an adapter into a GPU slot")
    s.add_argument("--default-max-tokens", type=int, default=16)
    s.add_argument("--record-requests", type=int, default=256, help="request bodies kept for GET /sim/requests")
    s.add_argument("--threads", type=int, default=1, help="native worker threads (default 1)")
    s.add_argument("--report-interval", type=float, default=0.0, help="print requests/s every N seconds")
    s.set_defaults(func=cmd_sim)

    s = sub.add_parser("classify", help="print the decision for a text, or for each line of a JSONL file")
    s.add_argument("--config", required=True, type=Path)
    s.add_argument("text", nargs="?", help="the text to classify")
    s.add_argument("--input", type=Path, help='JSONL with {"text": ...} per line; one decision per line on stdout')
    s.set_defaults(func=cmd_classify)

    s = sub.add_parser("eval", help="accuracy, precision/recall and confusion matrix on labelled JSONL")
    s.add_argument("--config", required=True, type=Path)
    s.add_argument(
        "--labelled", required=True, type=Path, help='JSONL with {"text": ..., "label": <category>} per line'
    )
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("train", help="fit a domain classifier on labelled JSONL (CPU, seconds)")
    s.add_argument("--config", required=True, type=Path, help="the config whose encoder and settings to use")
    s.add_argument("--labelled", required=True, type=Path, help='JSONL with {"text": ..., "label": ...} per line')
    s.add_argument("--out", required=True, type=Path, help="directory to write (replaced if it exists)")
    s.add_argument("--model", help="encoder to train on (default: classifier.embedding_model.model)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("models", help="list or build the shipped models")
    s.add_argument("action", choices=["list", "build"])
    s.add_argument("names", nargs="*", help="models to build (default: all)")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("keys", help="make the salted hash of a tenant API key, to store in api_keys")
    s.add_argument("action", choices=["hash"])
    s.add_argument("key", help="the key, or - to read it from stdin (keeps it out of the shell history)")
    s.set_defaults(func=cmd_keys)

    from .adapters_cli import add_parser as add_adapters
    from .demo import add_parser as add_demo

    add_demo(sub)
    add_adapters(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except (LoraRouterError, PlanError) as e:
        print(f"lora-router: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug: say so in one line; -v shows where
        if args.verbose:
            raise
        print(f"lora-router: internal error: {type(e).__name__}: {e} (run with -v for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
