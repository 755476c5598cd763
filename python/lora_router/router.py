"""``Router``: the Python face of the native router. Build it from a config file (or a
dict), classify text offline, or serve."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import _native
from .config import LoadedConfig, build_plan, load_config, validate
from .config.changes import reconcile
from .config.plan import uses_models
from .models import load_onnxruntime
from .plugins import Classifiers, Plugins, ServerCategories
from .registry import Registry, TenantStore

log = logging.getLogger("lora_router")


def _load(config: str | Path | dict[str, Any] | LoadedConfig) -> LoadedConfig:
    if isinstance(config, LoadedConfig):
        return config
    if isinstance(config, dict):
        return validate(config, "<dict>", Path.cwd())
    return load_config(config)


class Router:
    """A router built from a configuration.

    >>> router = Router("config.yaml")                      # doctest: +SKIP
    >>> router.classify("How do I fix this Rust borrow error?")["adapter"]  # doctest: +SKIP
    'technical-lora'
    """

    def __init__(self, config: str | Path | dict[str, Any] | LoadedConfig, *, threads: int | None = None):
        self.loaded = _load(config)
        for w in self.loaded.warnings:
            log.warning("%s: %s", self.loaded.file, w)
        self._server_categories: ServerCategories | None = None
        self._lock = threading.RLock()
        self.registry = Registry(self.loaded, self._rebuild)
        self.tenants = TenantStore(self.loaded, self._rebuild, self.registry.served_adapters)
        self._plugins = Plugins(self.loaded, self._categories_listed, self.registry, self.tenants, control=self)
        self.last_reload: dict[str, Any] | None = None
        try:
            self.plan = build_plan(self.loaded, None, self.registry, self.tenants)
            if uses_models(self.plan):
                load_onnxruntime()
            server_threads = self.loaded.config.server.threads if threads is None else threads
            self._native = _native.Router(
                json.dumps(self.plan),
                server_threads,
                self._plugins.entries,
                self._plugins.event_loop,
                self._plugins.admin,
                self._records,
            )
        except BaseException:
            self._plugins.stop()
            raise
        self.registry.native = self.tenants.native = self._native
        self._plugins.start()

    def _rebuild(self) -> None:
        """Builds the plan again from the config, the MCP server's categories, the
        registry's adapters and the run-time tenants, and swaps it in."""
        with self._lock:
            self.plan = build_plan(self.loaded, self._server_categories, self.registry, self.tenants)
            self._native.reload(json.dumps(self.plan), self._plugins.entries, self._plugins.event_loop)

    async def _records(
        self, kind: str, records: list[tuple[str, str | None]] | None, complete: bool
    ) -> list[tuple[str, str]] | None:
        """The core's handler for run-time records in the shared store: applies those other
        routers wrote (``records``), or with ``records=None`` gives back every record this
        router holds (to write back into a store that lost them)."""
        owner = self.registry if kind == "adapters" else self.tenants
        if records is None:
            return owner.export()
        if kind == "adapters":
            changed = await self.registry.apply_remote(records, complete)
        else:
            changed = self.tenants.apply_remote(records, complete)
        if changed:
            await asyncio.to_thread(self._rebuild)
        return None

    def _categories_listed(self, source: Classifiers, categories: ServerCategories) -> None:
        """An MCP server listed its categories (at connect, or changed after a restart): the
        ones the config lacks join the plan (if its client is still the one serving)."""
        with self._lock:
            if source is not self._plugins.classifiers:
                return
            self._server_categories = categories
            self._rebuild()
        log.info("MCP server categories: %s", ", ".join(categories.names))

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Waits until plugins are ready (the MCP server has listed its categories)."""
        return self._plugins.wait_ready(timeout)

    @property
    def config(self):
        return self.loaded.config

    def classify(
        self,
        text: str | None = None,
        *,
        messages: list[dict[str, Any]] | None = None,
        model: str | None = None,
        headers: dict[str, str] | None = None,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """The decision the data plane would make for this text or conversation (with these
        request headers and tenant, for classifiers that look at them; with tenants
        configured, ``tenant`` also limits the choice to what that tenant may use)."""
        if (text is None) == (messages is None):
            raise ValueError("give exactly one of text or messages")
        request: dict[str, Any] = {"text": text} if text is not None else {"messages": messages}
        if model is not None:
            request["model"] = model
        return json.loads(self._native.classify(json.dumps(request), list((headers or {}).items()), tenant))

    def reload(self, config: str | Path | dict[str, Any] | LoadedConfig) -> dict[str, Any]:
        """Swaps in a new config and reports what it did: the sections it ``applied`` and the
        settings whose change is ``restart_required`` (those keep their running values).
        Custom classifiers and the MCP client are made anew when their sections changed.
        Raises ConfigError (or PlanError) with nothing changed."""
        wanted = _load(config)
        with self._lock:
            effective, report = reconcile(self.loaded.config, wanted.config)
            loaded = replace(wanted, config=effective)
            fresh = self._plugins.prepare(loaded)
            try:
                self._plugins.run(self.registry.reconfigure(loaded), timeout=30)
                self.tenants.reconfigure(loaded)
                categories = None if fresh is not None else self._server_categories
                plan = build_plan(loaded, categories, self.registry, self.tenants)
                if uses_models(plan):
                    load_onnxruntime()
                entries = (fresh or self._plugins.classifiers).entries
                self._native.reload(json.dumps(plan), entries, self._plugins.event_loop)
            except BaseException:
                if fresh is not None:
                    self._plugins.discard(fresh)
                raise
            if fresh is not None:
                self._plugins.commit(fresh)
                self._server_categories = None
            self.loaded, self.plan = loaded, plan
            report = {**report, "hash": plan["hash"], "file": loaded.file, "at": time.time()}
            self.last_reload = report
        self.registry.wake()
        return report

    def reload_file(self) -> dict[str, Any]:
        """Reloads the config file the router runs."""
        return self.reload(self.loaded.file)

    def describe_config(self) -> dict[str, Any]:
        """What ``GET /admin/config`` shows: the file, the running plan's hash, where shared
        state lives, and the last reload's report."""
        store = self.plan["store"]
        return {
            "file": self.loaded.file,
            "hash": self.plan["hash"],
            "store": {"backend": "redis" if store["redis"] else "memory", "prefix": store["prefix"]},
            "ready": self._native.ready(),
            "warnings": list(self.loaded.warnings),
            "last_reload": self.last_reload,
        }

    def start(self, host: str | None = None, port: int | None = None) -> tuple[str, int]:
        s = self.loaded.config.server
        address = self._native.start(host if host is not None else s.host, s.port if port is None else port)
        self._plugins.start_registry()
        return address

    def begin_drain(self) -> None:
        """``/readyz`` answers 503 from now on; requests are still served."""
        self._native.begin_drain()

    def stop(self) -> None:
        self._native.stop()
        self._plugins.stop()

    @property
    def address(self) -> tuple[str, int] | None:
        return self._native.address

    def metrics(self) -> str:
        return self._native.metrics()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
