"""The MCP classifier: a real MCP client (the ``mcp`` SDK) for a classifier server, over stdio
or streamable HTTP, speaking vLLM Semantic Router's protocol:

- ``list_categories`` (no arguments) returns, in its first text content,
  ``{"categories": [...], "category_system_prompts": {...}, "category_descriptions": {...}}``;
  the index in ``categories`` is the class id;
- the classify tool (``tool_name``, else the first of classify_text, classify, categorize,
  categorize_text, else any tool whose name or description mentions "classif") takes
  ``{"text", "with_probabilities"}`` and returns ``{"class", "confidence", "probabilities"?,
  "model"?, "use_reasoning"?}``.

Every field is honoured: categories the config lacks are added with their system prompts;
``model`` (an adapter or base model) and ``use_reasoning`` become hints the decision applies
when the router serves that model. lora-router's extension: if the tool's input schema has a
``headers`` or ``tenant`` property, the request's headers (without credentials) and tenant
are passed, so a server can route by tenant.

The connection is kept open and supervised: a server that is down at start, dies or restarts
is reconnected with backoff, and meanwhile every classification abstains at once (the request
routes on the other signals). Results can be cached per text for ``cache_ttl_seconds``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("lora_router.mcp")

CLASSIFY_TOOLS = ("classify_text", "classify", "categorize", "categorize_text")
CACHE_ENTRIES = 10_000
PROBE_SECONDS = 5.0


class Unavailable(Exception):
    """The MCP server is not connected right now."""


@dataclass
class ServerCategories:
    names: list[str]
    system_prompts: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)


def describe_error(e: BaseException) -> str:
    """One line for a failure; the first leaf of an exception group (anyio task groups wrap
    the transport's error)."""
    while isinstance(getattr(e, "exceptions", None), tuple) and e.exceptions:  # an ExceptionGroup
        e = e.exceptions[0]
    text = str(e) or "no detail"
    return f"{type(e).__name__}: {text}".replace("\n", " ")[:200]


def first_json(result: Any, tool: str) -> dict[str, Any]:
    """The JSON object in a tool result's first text content."""
    if getattr(result, "is_error", False):
        texts = [getattr(c, "text", "") for c in result.content]
        raise RuntimeError(f"{tool} failed: {' '.join(texts)[:300]}")
    for content in result.content:
        text = getattr(content, "text", None)
        if text is not None:
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError(f"{tool} returned {type(value).__name__}, expected a JSON object")
            return value
    raise ValueError(f"{tool} returned no text content")


def server_command(command: str) -> str:
    """``python`` (or ``python3``) is the interpreter lora-router runs on, so a classifier
    server written with the ``mcp`` SDK finds it installed, whatever PATH says."""
    return sys.executable if command in ("python", "python3") and sys.executable else command


class MCPClassifier:
    def __init__(self, cfg: Any, base_dir: Path, on_categories: Callable[[ServerCategories], None]):
        """``base_dir``: the config file's directory; a stdio server runs there (or in ``cwd``
        relative to it)."""
        self.cfg = cfg
        self.base_dir = base_dir
        self.on_categories = on_categories
        self.state = "connecting"
        self.categories: ServerCategories | None = None
        self._client: Any = None
        self._tool: str | None = None
        self._passes_headers = False
        self._passes_tenant = False
        self._broken = asyncio.Event()
        self._broken_reason = ""
        self._cache: OrderedDict[tuple, tuple[float, Any]] = OrderedDict()
        self._task: asyncio.Task | None = None

    # --- connection -----------------------------------------------------------------------

    def target(self) -> Any:
        if self.cfg.transport_type == "stdio":
            from mcp.client.stdio import StdioServerParameters

            return StdioServerParameters(
                command=server_command(self.cfg.command),
                args=list(self.cfg.args),
                env=dict(self.cfg.env) or None,
                cwd=str(self.base_dir / (self.cfg.cwd or ".")),
            )
        return self.cfg.url

    def start(self) -> None:
        """Starts the supervisor; call on the plugin loop."""
        self._task = asyncio.get_running_loop().create_task(self._supervise())

    async def _supervise(self) -> None:
        from mcp import Client

        backoff = self.cfg.reconnect_seconds
        while True:
            try:
                async with Client(self.target(), read_timeout_seconds=self.cfg.timeout_seconds) as client:
                    await self._discover(client)
                    self._client = client
                    self._broken.clear()
                    self._set_state("connected")
                    backoff = self.cfg.reconnect_seconds
                    reason = await self._watch(client)
                    self._client = None
            except asyncio.CancelledError:
                raise
            except BaseException as e:
                reason = describe_error(e)
            self._client = None
            self._set_state(f"disconnected ({reason})")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def _watch(self, client: Any) -> str:
        """Returns why the connection broke: a call failed on it, or calling list_categories
        (every few seconds) did, which finds a server that died while idle (MCP's ping is gone
        from the protocol) and picks up categories a server changed without restarting."""
        while True:
            try:
                await asyncio.wait_for(self._broken.wait(), timeout=PROBE_SECONDS)
                return self._broken_reason
            except asyncio.TimeoutError:
                await asyncio.wait_for(self._list_categories(client), timeout=self.cfg.timeout_seconds)

    async def _discover(self, client: Any) -> None:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        name = self.cfg.tool_name
        if name is None:
            name = next((t for t in CLASSIFY_TOOLS if t in tools), None)
        if name is None:
            name = next(
                (
                    t.name
                    for t in tools.values()
                    if "classif" in t.name.lower() or "classif" in (t.description or "").lower()
                ),
                None,
            )
        if name is None or name not in tools:
            raise RuntimeError(f"no classify tool among {sorted(tools)}" + (f" (tool_name {name!r})" if name else ""))
        props = (tools[name].input_schema or {}).get("properties", {})
        self._tool, self._passes_headers, self._passes_tenant = name, "headers" in props, "tenant" in props
        if "list_categories" not in tools:
            raise RuntimeError("the server has no list_categories tool")
        await self._list_categories(client)

    async def _list_categories(self, client: Any) -> None:
        data = first_json(await client.call_tool("list_categories", {}), "list_categories")
        names = data.get("categories")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("list_categories returned no list of category names")
        categories = ServerCategories(
            names, dict(data.get("category_system_prompts") or {}), dict(data.get("category_descriptions") or {})
        )
        if self.categories is None or categories != self.categories:
            # Rebuilding the plan can embed category examples: off the loop, which keeps serving.
            await asyncio.to_thread(self.on_categories, categories)
            self.categories = categories

    def _set_state(self, state: str) -> None:
        if state != self.state:
            (log.info if state == "connected" else log.warning)("MCP classifier %s: %s", self.describe(), state)
        self.state = state

    def describe(self) -> str:
        if self.cfg.transport_type == "stdio":
            return " ".join([self.cfg.command, *self.cfg.args])
        return self.cfg.url

    def status(self) -> str:
        return self.state.split(" ")[0]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # --- classification -------------------------------------------------------------------

    async def classify(self, text: str, messages_json: str, headers: list[tuple[str, str]], tenant: str | None):
        """The native entry: ``None`` or (category, confidence, model, system prompt, use reasoning)."""
        client, categories = self._client, self.categories
        if client is None or categories is None:
            raise Unavailable(f"not connected ({self.state})")
        forwarded = self.forwarded(headers) if self._passes_headers else None
        key = (text, tuple(sorted(forwarded.items())) if forwarded else None, tenant if self._passes_tenant else None)
        now = time.monotonic()
        if self.cfg.cache_ttl_seconds > 0 and key in self._cache:
            expires, answer = self._cache[key]
            if expires > now:
                return answer
            del self._cache[key]
        args: dict[str, Any] = {"text": text, "with_probabilities": True}
        if forwarded is not None:
            args["headers"] = forwarded
        if self._passes_tenant:
            args["tenant"] = tenant
        try:
            result = await asyncio.wait_for(client.call_tool(self._tool, args), timeout=self.cfg.timeout_seconds)
        except asyncio.TimeoutError:
            raise TimeoutError(f"{self._tool} took longer than {self.cfg.timeout_seconds:g} s") from None
        except Exception as e:
            # The transport failed (a tool's own error comes back as a result, not here).
            self._broken_reason = describe_error(e)
            self._broken.set()
            raise
        answer = self.answer(first_json(result, self._tool), categories)
        if self.cfg.cache_ttl_seconds > 0:
            self._cache[key] = (now + self.cfg.cache_ttl_seconds, answer)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return answer

    def forwarded(self, headers: list[tuple[str, str]]) -> dict[str, str]:
        allowed = self.cfg.forward_headers
        return {k: v for k, v in headers if allowed is None or k in allowed}

    @staticmethod
    def answer(data: dict[str, Any], categories: ServerCategories):
        cls = data.get("class")
        if isinstance(cls, bool) or not isinstance(cls, (int, str)):
            raise ValueError(f"'class' must be an index or a category name, got {cls!r}")
        if isinstance(cls, int):
            if not 0 <= cls < len(categories.names):
                raise ValueError(f"class {cls} is outside the {len(categories.names)} listed categories")
            category = categories.names[cls]
        else:
            category = cls
        confidence = data.get("confidence")
        probabilities = data.get("probabilities")
        if confidence is None and isinstance(probabilities, list) and isinstance(cls, int) and cls < len(probabilities):
            confidence = probabilities[cls]
        if not isinstance(confidence, (int, float)) or isinstance(confidence, bool):
            raise ValueError(f"'confidence' must be a number, got {confidence!r}")
        model = data.get("model")
        use_reasoning = data.get("use_reasoning")
        return (
            category,
            float(confidence),
            model if isinstance(model, str) and model else None,
            None,
            use_reasoning if isinstance(use_reasoning, bool) else None,
        )
