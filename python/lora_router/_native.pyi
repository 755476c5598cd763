"""The native core, ``lora_router._native`` (Rust). Private: use the names that
``lora_router`` exports. Every native name is documented here."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final, TypeAlias

Answer: TypeAlias = tuple[str, float, str | None, str | None, bool | None] | None
"""An external classifier's answer: None to abstain, or (category, confidence, model or
adapter, system prompt, use_reasoning)."""

AdminHandler: TypeAlias = Callable[[str, str, bytes], Awaitable[tuple[int, str]]]
"""``handler(method, path, body)`` returns ``(status, JSON body)``."""

RecordsHandler: TypeAlias = Callable[
    [str, list[tuple[str, str | None]] | None, bool], Awaitable[list[tuple[str, str]] | None]
]
"""``handler(kind, records, complete)`` for run-time records of kind ``adapters`` or
``tenants`` in the shared store: with ``records`` (name, value or None for deleted; with
``complete``, every record there is) it applies what other routers wrote; with ``records=None``
it returns every record it holds, to write back into a store that lost them."""

Classifier: TypeAlias = tuple[
    Callable[[str, str, list[tuple[str, str]], str | None], Answer | Awaitable[Answer]],
    bool,
    Callable[[], str] | None,
]
"""(entry, is_async, status): ``entry(text, messages_json, headers, tenant)`` runs on a native
blocking thread (a coroutine function runs on the event loop); ``status()`` gives a one-word
state for ``/health``. An entry that raises or exceeds the signal's timeout abstains, and the
failure is logged and counted."""

__version__: Final[str]

class PlanError(ValueError):
    """A plan the native core cannot compile; the message starts with the plan field path."""

class StoreUnavailable(RuntimeError):
    """The shared state store (Redis) cannot be reached: nothing was read or written."""

class AdapterError(RuntimeError):
    """A replica did not load or unload an adapter. ``args`` is ``(status, message)``: the
    replica's HTTP status and message (404 with run-time updating off), 0 if unreachable."""

def error_body(status: int, message: str, param: str | None = None) -> str:
    """The OpenAI-style error envelope the router answers with, as JSON."""

def error_kinds() -> list[tuple[str, int, str]]:
    """Every error the router answers itself: (kind, HTTP status, envelope ``type``)."""

class Router:
    """A compiled routing plan and the HTTP server that runs it."""

    def __init__(
        self,
        plan_json: str,
        threads: int = 0,
        classifiers: dict[str, Classifier] | None = None,
        event_loop: asyncio.AbstractEventLoop | None = None,
        admin: AdminHandler | None = None,
        records: RecordsHandler | None = None,
    ) -> None:
        """Compiles ``plan_json`` (built by ``lora_router.config.build_plan``). ``threads`` sizes
        the process-wide native runtime the first time one is created (0: one per core).
        ``classifiers`` are the plan's ``external`` signals by name; async ones run on
        ``event_loop``, which must be running on another thread. ``admin`` answers
        ``/admin/...`` requests that carry the plan's admin key (on ``event_loop``);
        ``records`` is told of run-time records in the shared store (on ``event_loop``; once
        serving: at start, after each reconnection to the store, and on each change).
        The plan's ``store`` section is read here only: a reload cannot change it.
        Raises ``PlanError``."""

    def reload(
        self,
        plan_json: str,
        classifiers: dict[str, Classifier] | None = None,
        event_loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Compiles a new plan and swaps it in; requests in flight keep the old one.
        Replica health and load carry over for endpoints whose name and address are unchanged."""

    def classify(
        self, request_json: str, headers: list[tuple[str, str]] | None = None, tenant: str | None = None
    ) -> str:
        """The decision, as JSON, for ``{"text": ...}`` or ``{"messages": [...]}`` (optionally
        with ``model``), exactly as the data plane would decide for a request with these
        headers (lower-cased, credentials dropped) and tenant. With tenants configured,
        ``tenant`` names one and only what it may use is chosen; without, it is passed to
        classifiers as is. Raises ``ValueError`` for a request the data plane would reject
        (bad JSON, an explicit model unknown or not the tenant's) or an unknown tenant."""

    def replicas(self) -> str:
        """Every replica as the router sees it, as a JSON list: ``name``, ``endpoint`` (the
        configured endpoint it belongs to), ``address``, ``healthy``, ``requests_in_flight``,
        ``max_loras``, ``runtime_updates`` (unknown/on/off), ``synced``, ``waiting``, ``epoch``
        (restarts seen), ``registered`` (served adapter -> path), ``resident`` (modelled GPU
        slots, most recent first), ``inflight`` (per served adapter), ``reported_active``
        (running, by its metrics) and ``modelled_loads``."""

    def load_adapter(self, endpoint: str, served: str, path: str, timeout_s: float) -> bool:
        """Loads an adapter on an endpoint with vLLM's ``/v1/load_lora_adapter``: True if
        loaded now, False if it already served it from ``path``. Blocks (releasing the GIL).
        Raises ``AdapterError``, or ``ValueError`` for an unknown endpoint."""

    def unload_adapter(self, endpoint: str, served: str, timeout_s: float) -> None:
        """Unloads an adapter from an endpoint (one it does not serve counts as unloaded).
        Raises ``AdapterError``."""

    def home_order(self, adapter: str, base: str) -> list[str]:
        """The replicas of base model ``base`` in ``adapter``'s placement order (rendezvous
        hashing over replica names, the same on every router): its homes first. Raises
        ``ValueError`` for an unknown base model."""

    def store_all(self, kind: str) -> list[tuple[str, str]]:
        """Every run-time record of ``kind`` (``adapters``, ``tenants``, ``experiments``) in the
        shared store, as (name, value). Raises ``StoreUnavailable``."""

    def store_swap(self, kind: str, name: str, expected: str | None, value: str | None) -> bool:
        """Replaces a record only if the store still holds ``expected`` (None: no record),
        and tells every other router; ``value`` None deletes it. False if it changed
        meanwhile (nothing was written). Raises ``StoreUnavailable``."""

    def start(self, host: str, port: int) -> tuple[str, int]:
        """Serves on ``host:port`` (0 picks a free port) and returns the bound address.
        Returns at once; the server runs on native threads. Raises ``OSError``."""

    def stop(self) -> None:
        """Stops accepting, waits for in-flight requests up to the drain timeout, flushes the
        audit log."""

    def metrics(self) -> str:
        """The Prometheus text that ``GET /metrics`` serves."""

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound address while serving, else None."""

class Simulator:
    """The vLLM simulator (a test and demo tool, not an inference engine)."""

    def __init__(self, config_json: str, threads: int = 0) -> None:
        """``config_json`` carries every field of ``rust/sim/mod.rs`` ``SimConfig``. Raises
        ``ValueError`` for an invalid config or a static adapter path vLLM would reject."""

    def start(self, host: str, port: int) -> tuple[str, int]: ...
    def stop(self) -> None: ...
    def stats(self) -> list[tuple[str, float]]:
        """Counters since start: requests, cancelled, lora_loads, lora_evictions, uptime_s."""

def init_onnxruntime(path: str) -> None:
    """Loads ONNX Runtime from an absolute path to libonnxruntime (once per process; the
    onnxruntime wheel ships it, see ``lora_router.models.onnxruntime_library``). Raises
    ``RuntimeError``."""

class TextModel:
    """An ONNX text model with its tokenizer, as the data plane runs it (shared with it when
    both load the same files)."""

    def __init__(self, spec_json: str) -> None:
        """``spec_json`` carries the fields of ``rust/inference/model.rs`` ``ModelSpec``. Raises
        ``ValueError`` for a model or tokenizer that cannot be loaded."""

    def tokenize(self, text: str) -> tuple[list[int], int | None, bool]:
        """Token ids (special tokens included, within the budget), the number of tokens the
        whole text had (None if it was first cut by characters), and whether it was truncated."""

    def infer(self, texts: list[str]) -> list[list[float]]:
        """The model's output vector for each text (embeddings or logits), one at a time."""

    def embed(self, texts: list[str]) -> list[list[float]]:
        """L2-normalised embeddings of ``texts``, on every session in parallel."""
