"""The admin API, behind the key the core checks (rust/proxy/admin.rs):

- ``GET /admin/adapters``: every adapter, its versions and where each is loaded;
- ``GET /admin/adapters/{name}``: one of them;
- ``POST /admin/adapters`` ``{name, path, base_model, min_replicas?, max_replicas?}``: 201 once
  loaded on ``min_replicas`` replicas (a new path under an existing name is a new version);
- ``DELETE /admin/adapters/{name}``: 202 at once; it drains, then is unloaded everywhere;
- ``GET /admin/replicas``: each replica's health, slots, adapters and queue;
- ``GET /admin/tenants``: every tenant (config and run time) with its key ids, never keys;
- ``POST /admin/tenants`` ``{name, api_keys, adapters, ...}`` (the config's tenant fields,
  hashed keys only): 201 once requests with its keys are accepted;
- ``DELETE /admin/tenants/{name}``: a run-time tenant, at once;
- ``GET /admin/config``: the config file, the running plan's hash (the one
  ``lora_router_config_info`` shows), where shared state lives, the last reload's report;
- ``POST /admin/reload``: reloads the config file (as SIGHUP does) and answers what it
  applied and what needs a restart; a broken file is refused (400) and the running config
  stays.

``/admin/experiments`` is answered by the core (rust/proxy/admin.rs).

Errors are OpenAI-style envelopes with the status that fits: 400 bad request or path, 404
unknown adapter or base model, 409 a name that is taken, 502/503 a replica that refused (with
its reason).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import unquote

from .. import _native
from ..errors import LoraRouterError
from .registry import Registry, RegistryError
from .tenants import TenantStore

log = logging.getLogger("lora_router.admin")

Reply = tuple[int, str]


def ok(status: int, payload: Any) -> Reply:
    return status, json.dumps(payload)


def error(status: int, message: str, param: str | None = None) -> Reply:
    return status, _native.error_body(status, message, param)


class AdminAPI:
    def __init__(self, registry: Registry, tenants: TenantStore, control: Any = None):
        """``control`` is the Router (its config: ``describe_config``, ``reload_file``)."""
        self.registry = registry
        self.tenants = tenants
        self.control = control

    async def __call__(self, method: str, path: str, body: bytes) -> Reply:
        try:
            return await self.route(method, path.rstrip("/"), body)
        except RegistryError as e:
            return error(e.status, e.message, e.param)

    async def route(self, method: str, path: str, body: bytes) -> Reply:
        r = self.registry
        if path == "/admin/adapters":
            if method == "GET":
                return ok(200, {"object": "list", "data": r.list()})
            if method == "POST":
                return await self.register(body)
            return error(405, f"Method {method} is not allowed on {path}.")
        if path.startswith("/admin/adapters/"):
            name = unquote(path.removeprefix("/admin/adapters/"))
            if method == "GET":
                return ok(200, r.get(name))
            if method == "DELETE":
                return ok(202, await r.unregister(name))
            return error(405, f"Method {method} is not allowed on {path}.")
        if path == "/admin/tenants":
            if method == "GET":
                return ok(200, {"object": "list", "data": self.tenants.list()})
            if method == "POST":
                try:
                    fields = json.loads(body or b"{}")
                except ValueError as e:
                    return error(400, f"The body is not valid JSON: {e}")
                return ok(201, await self.tenants.add(fields))
            return error(405, f"Method {method} is not allowed on {path}.")
        if path.startswith("/admin/tenants/"):
            if method == "DELETE":
                return ok(200, await self.tenants.remove(unquote(path.removeprefix("/admin/tenants/"))))
            return error(405, f"Method {method} is not allowed on {path}.")
        if path == "/admin/replicas":
            if method == "GET":
                return ok(200, {"object": "list", "data": r.replicas()})
            return error(405, f"Method {method} is not allowed on {path}.")
        if path == "/admin/config" and self.control is not None:
            if method == "GET":
                return ok(200, self.control.describe_config())
            return error(405, f"Method {method} is not allowed on {path}.")
        if path == "/admin/reload" and self.control is not None:
            if method == "POST":
                return await self.reload()
            return error(405, f"Method {method} is not allowed on {path}.")
        return error(404, f"No route for {path}.")

    async def reload(self) -> Reply:
        try:
            report = await asyncio.to_thread(self.control.reload_file)
        except (LoraRouterError, _native.PlanError) as e:
            return error(400, f"The config was refused; the running config stays. {e}")
        return ok(200, report)

    async def register(self, body: bytes) -> Reply:
        try:
            req = json.loads(body or b"{}")
        except ValueError as e:
            return error(400, f"The body is not valid JSON: {e}")
        if not isinstance(req, dict):
            return error(400, "The body must be a JSON object.")
        fields = {"name": str, "path": str, "base_model": str}
        for key, kind in fields.items():
            if not isinstance(req.get(key), kind) or not req[key]:
                return error(400, f"`{key}` is required and must be a non-empty string.", key)
        for key in ("min_replicas", "max_replicas"):
            v = req.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                return error(400, f"`{key}` must be a positive integer.", key)
        unknown = sorted(set(req) - {*fields, "min_replicas", "max_replicas"})
        if unknown:
            return error(400, f"Unknown field `{unknown[0]}`.", unknown[0])
        name = req["name"]
        if not all(ch.isalnum() or ch in "-_." for ch in name):
            return error(400, "`name` may hold letters, digits, '-', '_' and '.' only.", "name")
        result = await self.registry.register(
            name, req["path"], req["base_model"], req.get("min_replicas") or 1, req.get("max_replicas")
        )
        return ok(201, result)
