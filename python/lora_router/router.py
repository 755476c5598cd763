"""``Router``: the Python face of the native router. Build it from a config file (or a
dict), classify text offline, or serve."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path
from typing import Any

from . import _native
from .config import ConfigError, LoadedConfig, Problem, build_plan, load_config, validate
from .config.plan import uses_models
from .models import load_onnxruntime
from .plugins import Plugins, ServerCategories
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
        self._plugins = Plugins(self.loaded, self._categories_listed, self.registry, self.tenants)
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

    def _categories_listed(self, categories: ServerCategories) -> None:
        """An MCP server listed its categories (at connect, or changed after a restart): the
        ones the config lacks join the plan."""
        with self._lock:
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

    def reload(self, config: str | Path | dict[str, Any] | LoadedConfig) -> None:
        """Swaps in a new config. Custom classifiers and the MCP client are those of the
        config the router started with; changing them needs a restart."""
        loaded = _load(config)
        self._check_plugins_unchanged(loaded)
        with self._lock:
            self._plugins.run(self.registry.reconfigure(loaded), timeout=30)
            self.tenants.reconfigure(loaded)
            plan = build_plan(loaded, self._server_categories, self.registry, self.tenants)
            if uses_models(plan):
                load_onnxruntime()
            self._native.reload(json.dumps(plan), self._plugins.entries, self._plugins.event_loop)
            self.loaded, self.plan = loaded, plan
        self.registry.wake()

    def _check_plugins_unchanged(self, loaded: LoadedConfig) -> None:
        """Custom classifiers are imported and the MCP client started once, at start."""
        before, after = self.loaded.config.classifier, loaded.config.classifier
        problems = [
            Problem(f"classifier.{key}", "changed; custom classifiers and the MCP client change only on restart")
            for key in ("custom", "mcp_category_model")
            if getattr(before, key) != getattr(after, key)
        ]
        if problems:
            raise ConfigError(loaded.file, problems)

    def start(self, host: str | None = None, port: int | None = None) -> tuple[str, int]:
        s = self.loaded.config.server
        address = self._native.start(host if host is not None else s.host, s.port if port is None else port)
        self._plugins.start_registry()
        return address

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
