"""Custom classifiers: routing logic of your own as a first-class signal.

A classifier is a plain function, or an object with a ``classify`` method, sync or async. It
receives a :class:`ClassificationRequest` and returns a :class:`Classification`, or ``None``
to abstain::

    from lora_router import Classification, ClassificationRequest

    def classify(request: ClassificationRequest) -> Classification | None:
        tenant = request.headers.get("x-tenant-id")
        if tenant in request.settings["premium"]:
            return Classification("premium", confidence=1.0, adapter=f"{tenant}-lora")
        return None

and is named in the config as ``module:attribute``::

    classifier:
      custom:
        - {name: "tenant-db", entrypoint: "my_pkg.routing:classify", timeout_ms: 50, settings: {premium: ["acme"]}}

The router imports it at start (an import error is a config error). The native core calls it
without blocking its proxy loop; a classifier that raises, times out or returns something
else abstains: the error is logged and counted, and the request routes on the other signals.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Classification", "ClassificationRequest", "ClassifierFn", "load"]


class ClassificationRequest:
    """What a classifier sees of one request."""

    __slots__ = ("_messages", "_messages_json", "headers", "settings", "tenant", "text")

    def __init__(
        self,
        text: str,
        messages_json: str = "[]",
        headers: Mapping[str, str] | None = None,
        tenant: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ):
        self.text: str = text
        """The text the router classifies (by ``routing.classify_messages``)."""
        self.headers: Mapping[str, str] = dict(headers or {})
        """Request headers, lower-cased, without credentials (authorization, cookies)."""
        self.tenant: str | None = tenant
        """The tenant the request's API key belongs to, or None."""
        self.settings: Mapping[str, Any] = settings or {}
        """The ``settings`` dict this classifier has in the config."""
        self._messages_json = messages_json
        self._messages: list[dict[str, Any]] | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's messages (parsed on first use; empty for completions)."""
        if self._messages is None:
            self._messages = json.loads(self._messages_json)
        return self._messages

    def __repr__(self) -> str:
        return f"ClassificationRequest(text={self.text!r}, tenant={self.tenant!r})"


@dataclass(frozen=True)
class Classification:
    """A classifier's answer."""

    category: str
    """A category of the config (or one the MCP server listed)."""
    confidence: float = 1.0
    """0 to 1; the classifier decides when it reaches its ``threshold``."""
    adapter: str | None = None
    """Use this adapter instead of the category's model_scores (ignored if the router does not serve it)."""
    model: str | None = None
    """Or a base model; ``adapter`` wins if both are set."""
    system_prompt: str | None = None
    """Replaces the category's system prompt for this request."""
    use_reasoning: bool | None = None
    """Replaces the category's reasoning setting for this request."""


ClassifierFn = Callable[[ClassificationRequest], "Classification | Awaitable[Classification | None] | None"]

# What the native core receives from a classifier: None, or
# (category, confidence, model or adapter, system prompt, use reasoning).
Answer = tuple[str, float, "str | None", "str | None", "bool | None"] | None


def to_answer(name: str, result: Any) -> Answer:
    if result is None:
        return None
    if not isinstance(result, Classification):
        raise TypeError(f"classifier {name} returned {type(result).__name__}, expected Classification or None")
    if not isinstance(result.category, str) or not result.category:
        raise TypeError(f"classifier {name} returned a Classification without a category")
    return (
        result.category,
        float(result.confidence),
        result.adapter or result.model,
        result.system_prompt,
        result.use_reasoning,
    )


def resolve(entrypoint: str, settings: Mapping[str, Any], config_dir: Path | None = None) -> ClassifierFn:
    """``module:attribute``: a function, an object with ``classify``, or a class (instantiated
    with the settings if its constructor takes an argument). Modules are found on sys.path,
    then in ``config_dir``, so a classifier can sit beside its config."""
    module_name, sep, attr = entrypoint.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"'{entrypoint}' is not of the form module:attribute")
    if config_dir is not None and str(config_dir) not in sys.path:
        sys.path.append(str(config_dir))
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as e:
        raise ValueError(f"cannot import {module_name}: {type(e).__name__}: {e}") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{module_name} has no attribute {attr}")
        target = getattr(target, part)
    if inspect.isclass(target):
        try:
            params = [p for p in inspect.signature(target).parameters.values() if p.default is p.empty]
        except (TypeError, ValueError):
            params = []
        target = target(dict(settings)) if params else target()
    fn = getattr(target, "classify", None) if not inspect.isfunction(target) else None
    fn = fn or target
    if not callable(fn):
        raise ValueError(f"{entrypoint} is neither a function nor an object with a classify method")
    return fn


def is_async(fn: Callable[..., Any]) -> bool:
    call = type(fn).__call__ if not inspect.isroutine(fn) else None
    return inspect.iscoroutinefunction(fn) or (call is not None and inspect.iscoroutinefunction(call))


def load(
    name: str, entrypoint: str, settings: Mapping[str, Any], config_dir: Path | None = None
) -> tuple[Callable[..., Any], bool]:
    """The native entry for a configured classifier: a function of ``(text, messages_json,
    headers, tenant)`` returning an :data:`Answer` (a coroutine function for async
    classifiers), and whether it is async."""
    fn = resolve(entrypoint, settings, config_dir)
    frozen = dict(settings)

    Headers = list[tuple[str, str]]

    def request(text: str, messages_json: str, headers: Headers, tenant: str | None) -> ClassificationRequest:
        return ClassificationRequest(text, messages_json, dict(headers), tenant, frozen)

    if is_async(fn):

        async def entry_async(text: str, messages_json: str, headers: Headers, tenant: str | None) -> Answer:
            return to_answer(name, await fn(request(text, messages_json, headers, tenant)))

        return entry_async, True

    def entry(text: str, messages_json: str, headers: Headers, tenant: str | None) -> Answer:
        return to_answer(name, fn(request(text, messages_json, headers, tenant)))

    return entry, False
