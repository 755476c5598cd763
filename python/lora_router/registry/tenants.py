"""Tenants added and removed at run time through the admin API, beside those the config
declares. They hold only salted key hashes (plain keys come from the environment or a file,
in the config). Each is a record in the shared store, like run-time adapters: every router
of a fleet applies the others' (``apply_remote``), and a restarted router reads them back."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from .. import _native
from ..config import LoadedConfig
from ..config.checks import tenant_problems
from ..config.load import format_path
from ..config.models import Tenant
from ..config.plan import tenant_keys
from .registry import RegistryError, unavailable

log = logging.getLogger("lora_router.tenants")


class TenantStore:
    def __init__(self, loaded: LoadedConfig, rebuild: Callable[[], None], adapters: Callable[[], dict[str, str]]):
        """``adapters`` gives every adapter the router knows (config and run time) -> base."""
        self.loaded = loaded
        self.runtime: dict[str, Tenant] = {}
        self.raw: dict[str, str] = {}
        """Each run-time tenant's record as the shared store holds it."""
        self._rebuild = rebuild
        self._adapters = adapters
        self.native: Any = None

    def reconfigure(self, loaded: LoadedConfig) -> None:
        """A reloaded config: a config tenant replaces a run-time one of the same name."""
        self.loaded = loaded
        for t in loaded.config.tenants:
            if self.runtime.pop(t.name, None) is not None:
                log.warning("tenant %s is now declared in the config; its run-time definition is dropped", t.name)

    def describe(self, t: Tenant, source: str) -> dict[str, Any]:
        return {
            "name": t.name,
            "source": source,
            # The ids the audit log shows (the plan's, so the two always agree).
            "key_ids": [k["id"] for k in tenant_keys(self.loaded, t)],
            "adapters": t.adapters,
            "base_models": t.base_models,
            "default_adapter": t.default_adapter,
            "aliases": t.aliases,
            "intent_routing": t.intent_routing,
            "limits": t.limits.model_dump(),
        }

    def list(self) -> list[dict[str, Any]]:
        return [self.describe(t, "config") for t in self.loaded.config.tenants] + [
            self.describe(t, "runtime") for t in self.runtime.values()
        ]

    async def add(self, fields: Any) -> dict[str, Any]:
        if not isinstance(fields, dict):
            raise RegistryError(400, "The body must be a JSON object.")
        for plain in ("api_key_env", "api_key_file"):
            if plain in fields:
                raise RegistryError(
                    400, f"`{plain}` is for the config; the admin API takes hashed `api_keys` only.", plain
                )
        try:
            tenant = Tenant.model_validate(fields)
        except ValidationError as e:
            err = e.errors()[0]
            where = format_path(err["loc"]) or "(body)"
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            raise RegistryError(400, f"`{where}`: {msg}.", where.split(".")[0].split("[")[0]) from None
        if tenant.name in self.runtime or any(t.name == tenant.name for t in self.loaded.config.tenants):
            raise RegistryError(409, f"A tenant named `{tenant.name}` exists already.", "name")
        tenants = [*self.loaded.config.tenants, *self.runtime.values(), tenant]
        trial = replace(self.loaded, config=self.loaded.config.model_copy(update={"tenants": tenants}), warnings=[])
        me = f"tenants[{len(tenants) - 1}]"
        problems = [p for p in tenant_problems(trial, self._adapters()) if p.path.startswith(me)]
        if problems:
            p = problems[0]
            raise RegistryError(400, f"`{p.path.removeprefix(me + '.')}`: {p.message}.", "tenant")
        raw = json.dumps(tenant.model_dump(exclude_defaults=True), sort_keys=True)
        if not await asyncio.to_thread(self._swap, tenant.name, None, raw):
            raise RegistryError(409, f"A tenant named `{tenant.name}` exists already.", "name")
        self.runtime[tenant.name], self.raw[tenant.name] = tenant, raw
        await asyncio.to_thread(self._rebuild)
        return self.describe(tenant, "runtime")

    async def remove(self, name: str) -> dict[str, Any]:
        if any(t.name == name for t in self.loaded.config.tenants):
            raise RegistryError(409, f"The tenant `{name}` is declared in the config; remove it there and reload.")
        if name not in self.runtime:
            raise RegistryError(404, f"No tenant named `{name}`.")
        if not await asyncio.to_thread(self._swap, name, self.raw.get(name), None):
            raise RegistryError(409, f"The tenant `{name}` was changed by another router at the same moment; retry.")
        self.runtime.pop(name, None)
        self.raw.pop(name, None)
        await asyncio.to_thread(self._rebuild)
        return {"name": name, "deleted": True}

    # --- the shared store ------------------------------------------------------------------

    def _swap(self, name: str, expected: str | None, value: str | None) -> bool:
        try:
            return bool(self.native.store_swap("tenants", name, expected, value))
        except _native.StoreUnavailable as e:
            raise unavailable(e) from None

    def export(self) -> list[tuple[str, str]]:
        return sorted(self.raw.items())

    def apply_remote(self, records: list[tuple[str, str | None]], complete: bool) -> bool:
        """Tenants other routers added (a value) or removed (``None``); with ``complete``,
        every run-time tenant there is. Returns whether anything changed."""
        changed = False
        for name, raw in records:
            if raw is None:
                changed |= self.runtime.pop(name, None) is not None
                self.raw.pop(name, None)
                continue
            if self.raw.get(name) == raw:
                continue
            try:
                tenant = Tenant.model_validate(json.loads(raw))
            except (ValueError, ValidationError) as e:
                log.warning("tenant %s: ignoring a record this router cannot read: %s", name, e)
                continue
            self.runtime[name], self.raw[name] = tenant, raw
            changed = True
        if complete:
            present = {name for name, raw in records if raw is not None}
            for name in [n for n in self.runtime if n not in present]:
                self.runtime.pop(name)
                self.raw.pop(name, None)
                changed = True
        return changed
