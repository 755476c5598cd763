"""The native core, ``lora_router._native`` (Rust). Private: use the names that
``lora_router`` exports. Every native name is documented here."""

from typing import Final

__version__: Final[str]

class PlanError(ValueError):
    """A plan the native core cannot compile; the message starts with the plan field path."""

def error_kinds() -> list[tuple[str, int, str]]:
    """Every error the router answers itself: (kind, HTTP status, envelope ``type``)."""

class Router:
    """A compiled routing plan and the HTTP server that runs it."""

    def __init__(self, plan_json: str, threads: int = 0) -> None:
        """Compiles ``plan_json`` (built by ``lora_router.config.build_plan``). ``threads`` sizes
        the process-wide native runtime the first time one is created (0: one per core).
        Raises ``PlanError``."""

    def reload(self, plan_json: str) -> None:
        """Compiles a new plan and swaps it in; requests in flight keep the old one.
        Replica health and load carry over for endpoints whose name and address are unchanged."""

    def classify(self, request_json: str) -> str:
        """The decision, as JSON, for ``{"text": ...}`` or ``{"messages": [...]}`` (optionally
        with ``model``), exactly as the data plane would decide. Raises ``ValueError`` for a
        request the data plane would reject (bad JSON, unknown explicit model)."""

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
