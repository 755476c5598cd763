"""What a reload changes. Most of a config takes effect on reload; a few settings are read
once, when the router starts (the listener, the worker threads, the shared state store).
A reload reports them as needing a restart and keeps running with the values it started
with, so the router never claims a change it did not make."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .models import RouterConfig

RESTART_ONLY: dict[str, str] = {
    "server.host": "the listening address",
    "server.port": "the listening port",
    "server.threads": "the native worker threads",
    "server.timeouts.connect_s": "the upstream connection pool",
    "redis": "the shared state store",
    "quotas.redis_url": "the shared state store",
    "quotas.redis_prefix": "the shared state store",
    "quotas.on_backend_error": "the shared state store",
    "fleet.expected_replicas": "the shared state store",
}
"""Settings read once, at start: dotted path -> what reads them."""


def _get(model: Any, path: str) -> Any:
    for part in path.split("."):
        model = getattr(model, part)
    return model


def _with(model: BaseModel, path: str, value: Any) -> BaseModel:
    """``model`` with the setting at ``path`` replaced (copies along the path)."""
    head, _, rest = path.partition(".")
    if not rest:
        return model.model_copy(update={head: value})
    return model.model_copy(update={head: _with(getattr(model, head), rest, value)})


def reconcile(running: RouterConfig, wanted: RouterConfig) -> tuple[RouterConfig, dict[str, Any]]:
    """The config a reload runs (``wanted``, but with the restart-only settings ``running``
    has) and its report: sections ``applied``, settings whose change ``restart_required``."""
    restart = [p for p in RESTART_ONLY if _get(running, p) != _get(wanted, p)]
    effective = wanted
    for p in restart:
        effective = _with(effective, p, _get(running, p))
    applied = [f for f in RouterConfig.model_fields if getattr(running, f) != getattr(effective, f)]
    return effective, {
        "applied": applied,
        "restart_required": [{"setting": p, "read_by": RESTART_ONLY[p]} for p in restart],
    }


def summary(report: dict[str, Any]) -> str:
    """One line for the log."""
    applied = ", ".join(report["applied"]) or "nothing changed"
    line = f"applied: {applied}"
    if report["restart_required"]:
        kept = ", ".join(r["setting"] for r in report["restart_required"])
        line += f"; needs a restart (running values kept): {kept}"
    return line
