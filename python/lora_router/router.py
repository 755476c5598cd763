"""``Router``: the Python face of the native router. Build it from a config file (or a
dict), classify text offline, or serve."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from . import _native
from .config import LoadedConfig, build_plan, load_config, validate
from .config.plan import uses_models
from .models import load_onnxruntime

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
        self.plan = build_plan(self.loaded)
        if uses_models(self.plan):
            load_onnxruntime()
        server_threads = self.loaded.config.server.threads if threads is None else threads
        self._native = _native.Router(json.dumps(self.plan), server_threads)

    @property
    def config(self):
        return self.loaded.config

    def classify(
        self, text: str | None = None, *, messages: list[dict[str, Any]] | None = None, model: str | None = None
    ) -> dict[str, Any]:
        """The decision the data plane would make for this text or conversation."""
        if (text is None) == (messages is None):
            raise ValueError("give exactly one of text or messages")
        request: dict[str, Any] = {"text": text} if text is not None else {"messages": messages}
        if model is not None:
            request["model"] = model
        return json.loads(self._native.classify(json.dumps(request)))

    def reload(self, config: str | Path | dict[str, Any] | LoadedConfig) -> None:
        loaded = _load(config)
        plan = build_plan(loaded)
        if uses_models(plan):
            load_onnxruntime()
        self._native.reload(json.dumps(plan))
        self.loaded, self.plan = loaded, plan

    def start(self, host: str | None = None, port: int | None = None) -> tuple[str, int]:
        s = self.loaded.config.server
        return self._native.start(host if host is not None else s.host, s.port if port is None else port)

    def stop(self) -> None:
        self._native.stop()

    @property
    def address(self) -> tuple[str, int] | None:
        return self._native.address

    def metrics(self) -> str:
        return self._native.metrics()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
