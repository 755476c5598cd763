"""What runs in Python beside the native core, on one asyncio loop thread: the classifiers it
calls as external signals (custom ones, lora_router.classifier, and the MCP classifier,
plugins/mcp.py), the adapter registry's reconcile loop and the admin API
(lora_router.registry)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from .. import classifier
from ..config import ConfigError, LoadedConfig, Problem
from ..config.plan import mcp_enabled
from ..registry import AdminAPI, Registry, TenantStore
from .loop import LoopThread
from .mcp import MCPClassifier, ServerCategories

log = logging.getLogger("lora_router.plugins")

__all__ = ["Classifiers", "Plugins", "ServerCategories"]


class Classifiers:
    """The custom classifiers and the MCP classifier of one config, as the core calls them."""

    def __init__(self, loaded: LoadedConfig, on_categories: Callable[[ServerCategories], None]):
        c = loaded.config
        self.section = c.classifier.model_copy()
        self.entries: dict[str, tuple[Callable[..., Any], bool, Callable[[], str] | None]] = {}
        for i, cc in enumerate(c.classifier.custom):
            try:
                entry, is_async = classifier.load(f"custom:{cc.name}", cc.entrypoint, cc.settings, loaded.base_dir)
            except ValueError as e:
                where = f"classifier.custom[{i}].entrypoint"
                raise ConfigError(loaded.file, [Problem(where, str(e), loaded.lines.get(where))]) from None
            self.entries[f"custom:{cc.name}"] = (entry, is_async, None)
        self.mcp: MCPClassifier | None = None
        self.ready = threading.Event()
        if mcp_enabled(c):

            def listed(categories: ServerCategories) -> None:
                on_categories(self, categories)
                self.ready.set()

            self.mcp = MCPClassifier(c.classifier.mcp_category_model, loaded.base_dir, listed)
            self.entries["mcp"] = (self.mcp.classify, True, self.mcp.status)
        else:
            self.ready.set()

    def same_as(self, loaded: LoadedConfig) -> bool:
        c = loaded.config.classifier
        return (self.section.custom, self.section.mcp_category_model) == (c.custom, c.mcp_category_model)


class Plugins:
    def __init__(
        self,
        loaded: LoadedConfig,
        on_categories: Callable[[Classifiers, ServerCategories], None],
        registry: Registry,
        tenants: TenantStore,
        control: Any = None,
    ):
        self.registry = registry
        self.admin = AdminAPI(registry, tenants, control)
        self._registry_task: Any = None
        self._on_categories = on_categories
        self.classifiers = Classifiers(loaded, on_categories)
        self.loop = LoopThread()

    @property
    def entries(self) -> dict[str, tuple[Callable[..., Any], bool, Callable[[], str] | None]]:
        return self.classifiers.entries

    @property
    def event_loop(self) -> Any:
        return self.loop.loop

    def start(self) -> None:
        """Connects the MCP classifier (offline use needs it too)."""
        self._connect(self.classifiers)

    def _connect(self, c: Classifiers) -> None:
        if c.mcp is not None:
            mcp = c.mcp

            async def begin() -> None:
                mcp.start()

            self.loop.submit(begin()).result(5)

    def prepare(self, loaded: LoadedConfig) -> Classifiers | None:
        """New classifiers for a reloaded config whose classifier sections changed (its MCP
        client connecting), else None. Raises ConfigError."""
        if self.classifiers.same_as(loaded):
            return None
        fresh = Classifiers(loaded, self._on_categories)
        self._connect(fresh)
        return fresh

    def commit(self, fresh: Classifiers) -> None:
        """``fresh`` serves from now on; the old MCP client is stopped."""
        old, self.classifiers = self.classifiers, fresh
        self._retire(old)

    def _retire(self, c: Classifiers) -> None:
        if c.mcp is not None:
            try:
                self.loop.submit(c.mcp.stop()).result(10)
            except Exception as e:
                log.warning("stopping the MCP client: %s", e)

    def discard(self, fresh: Classifiers) -> None:
        """A prepared set that will not serve (the reload failed)."""
        self._retire(fresh)

    def start_registry(self) -> None:
        """Starts the reconcile loop (when serving: it needs the replicas' state)."""

        async def begin() -> None:
            self._registry_task = asyncio.get_running_loop().create_task(self.registry.run())

        self.loop.submit(begin()).result(5)

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Runs a coroutine on the loop and waits for it (from another thread)."""
        return self.loop.submit(coro).result(timeout)

    def wait_ready(self, timeout: float) -> bool:
        """Waits until the MCP server has listed its categories (at once if there is none)."""
        return self.classifiers.ready.wait(timeout)

    def stop(self) -> None:
        self._retire(self.classifiers)
        self.loop.stop()
