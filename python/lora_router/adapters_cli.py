"""``lora-router adapters list|register|unregister|replicas``: the admin API from a shell.

The router's URL and admin key come from ``--router`` / ``--admin-key`` or the environment
(``LORA_ROUTER_URL``, ``LORA_ROUTER_ADMIN_KEY``). Errors print the router's message and exit 1.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from .errors import LoraRouterError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("adapters", help="list, register or unregister adapters on a running router (admin API)")
    p.add_argument("action", choices=["list", "register", "unregister", "replicas"])
    p.add_argument("name", nargs="?", help="the adapter (register, unregister)")
    p.add_argument("--router", default=os.environ.get("LORA_ROUTER_URL", "http://127.0.0.1:8801"))
    p.add_argument("--admin-key", default=os.environ.get("LORA_ROUTER_ADMIN_KEY"))
    p.add_argument("--path", help="register: the adapter directory (under the router's adapter_roots)")
    p.add_argument("--base-model", help="register: the base model it belongs to")
    p.add_argument("--min-replicas", type=int, help="register: replicas to keep it loaded on (default 1)")
    p.add_argument("--max-replicas", type=int, help="register: replicas it may spread to (default all)")
    p.add_argument("--json", action="store_true", help="print the router's JSON answer")
    p.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the router (register waits for loads)"
    )
    p.set_defaults(func=run)


def call(args: Any, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    if not args.admin_key:
        raise LoraRouterError("no admin key: pass --admin-key or set LORA_ROUTER_ADMIN_KEY")
    req = urllib.request.Request(
        args.router.rstrip("/") + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {args.admin_key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=args.timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            message = json.loads(text)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = text.decode(errors="replace")
        raise LoraRouterError(f"{method} {path}: {e.code} {message}") from None
    except (urllib.error.URLError, OSError) as e:
        raise LoraRouterError(f"cannot reach the router at {args.router}: {getattr(e, 'reason', e)}") from None


def describe(a: dict[str, Any]) -> str:
    versions = ", ".join(
        f"v{v['version']} {v['served_name']} {v['state']} on [{', '.join(v['loaded_on'])}]" for v in a["versions"]
    )
    return f"{a['name']:<24} {a['base_model']:<16} {a['source']:<8} {a['state']:<9} {versions or '(static)'}"


def describe_replica(r: dict[str, Any]) -> str:
    state = "healthy" if r["healthy"] else "DOWN"
    slots = f"slots {len(r['resident'])}/{r['max_loras']}"
    load = f"in flight {r['requests_in_flight']}, waiting {r['waiting']}"
    return f"{r['name']:<16} {state:<8} {slots}  {load}  adapters: {', '.join(sorted(r['registered']))}"


def run(args: Any) -> int:
    if args.action in ("register", "unregister") and not args.name:
        raise LoraRouterError(f"adapters {args.action} needs the adapter's name")
    if args.action == "list":
        _, out = call(args, "GET", "/admin/adapters")
        rows = [describe(a) for a in out["data"]]
        text = "\n".join([f"{'name':<24} {'base model':<16} {'source':<8} {'state':<9} versions", *rows])
    elif args.action == "replicas":
        _, out = call(args, "GET", "/admin/replicas")
        text = "\n".join(describe_replica(r) for r in out["data"])
    elif args.action == "register":
        if not args.path or not args.base_model:
            raise LoraRouterError("adapters register needs --path and --base-model")
        body: dict[str, Any] = {"name": args.name, "path": args.path, "base_model": args.base_model}
        if args.min_replicas is not None:
            body["min_replicas"] = args.min_replicas
        if args.max_replicas is not None:
            body["max_replicas"] = args.max_replicas
        _, out = call(args, "POST", "/admin/adapters", body)
        text = "registered: " + describe(out)
    else:
        _, out = call(args, "DELETE", f"/admin/adapters/{quote(args.name, safe='')}")
        text = f"unregistering {args.name}: it drains, then is unloaded everywhere"
    print(json.dumps(out, indent=2) if args.json else text, file=sys.stdout)
    return 0
