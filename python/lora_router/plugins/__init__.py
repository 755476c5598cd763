"""Classifiers that run in Python, registered with the native core as external signals: the
custom classifiers a config names (lora_router.classifier) and the MCP classifier
(plugins/mcp.py). Async ones and the MCP client run on one asyncio loop thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .. import classifier
from ..config import ConfigError, LoadedConfig, Problem
from ..config.plan import mcp_enabled
from .loop import LoopThread
from .mcp import MCPClassifier, ServerCategories

log = logging.getLogger("lora_router.plugins")

__all__ = ["Plugins", "ServerCategories"]


class Plugins:
    def __init__(self, loaded: LoadedConfig, on_categories: Callable[[ServerCategories], None]):
        c = loaded.config
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
        needs_loop = self.mcp is not None or any(is_async for _, is_async, _ in self.entries.values())
        self.loop: LoopThread | None = LoopThread() if needs_loop else None

    @property
    def event_loop(self) -> Any:
        return self.loop.loop if self.loop else None

    def start(self) -> None:
        if self.mcp is not None and self.loop is not None:

            async def begin() -> None:
                self.mcp.start()

            self.loop.submit(begin()).result(5)

    def wait_ready(self, timeout: float) -> bool:
        """Waits until the MCP server has listed its categories (at once if there is none)."""
        return self.mcp is None or self._categories_ready.wait(timeout)

    def stop(self) -> None:
        if self.loop is None:
            return
        if self.mcp is not None:
            try:
                self.loop.submit(self.mcp.stop()).result(10)
            except Exception as e:
                log.warning("stopping the MCP client: %s", e)
        self.loop.stop()
