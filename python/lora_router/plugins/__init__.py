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

__all__ = ["Plugins", "ServerCategories"]


class Plugins:
    def __init__(
        self,
        loaded: LoadedConfig,
        on_categories: Callable[[ServerCategories], None],
        registry: Registry,
        tenants: TenantStore,
    ):
        c = loaded.config
        self.registry = registry
        self.admin = AdminAPI(registry, tenants)
        self._registry_task: Any = None
        self.entries: dict[str, tuple[Callable[..., Any], bool, Callable[[], str] | None]] = {}
        for i, cc in enumerate(c.classifier.custom):
            try:
                entry, is_async = classifier.load(f"custom:{cc.name}", cc.entrypoint, cc.settings, loaded.base_dir)
            except ValueError as e:
                raise ConfigError(
                    loaded.file,
                    [
                        Problem(
                            f"classifier.custom[{i}].entrypoint",
                            str(e),
                            loaded.lines.get(f"classifier.custom[{i}].entrypoint"),
                        )
                    ],
                ) from None
            self.entries[f"custom:{cc.name}"] = (entry, is_async, None)
        self.mcp: MCPClassifier | None = None
        self._categories_ready = threading.Event()
        if mcp_enabled(c):

            def listed(categories: ServerCategories) -> None:
                on_categories(categories)
                self._categories_ready.set()

            self.mcp = MCPClassifier(c.classifier.mcp_category_model, loaded.base_dir, listed)
            self.entries["mcp"] = (self.mcp.classify, True, self.mcp.status)
        self.loop = LoopThread()

    @property
    def event_loop(self) -> Any:
        return self.loop.loop

    def start(self) -> None:
        """Connects the MCP classifier (offline use needs it too)."""
        if self.mcp is not None:

            async def begin() -> None:
                self.mcp.start()

            self.loop.submit(begin()).result(5)

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
        return self.mcp is None or self._categories_ready.wait(timeout)

    def stop(self) -> None:
        if self.mcp is not None:
            try:
                self.loop.submit(self.mcp.stop()).result(10)
            except Exception as e:
                log.warning("stopping the MCP client: %s", e)
        self.loop.stop()
