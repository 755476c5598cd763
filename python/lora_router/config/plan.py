"""From a validated config to the plan the native core compiles: plain data with every
default resolved. The plan's shape is rust/plan/schema.rs; the two change together."""

from __future__ import annotations

import os
from typing import Any

from .load import LoadedConfig
from .models import BUILTIN_REASONING_FAMILIES, RouterConfig

PLAN_VERSION = 1


def default_category(c: RouterConfig) -> str | None:
    """The category that serves when no signal decides: ``default_category`` if set, else
    the first category that sends the default model without an adapter."""
    if c.default_category:
        return c.default_category
    for cat in c.categories:
        if any(ms.model == c.default_model and ms.lora_name is None for ms in cat.model_scores):
            return cat.name
    return None


def endpoints_for(c: RouterConfig, base: str) -> list[str]:
    """Endpoints that serve a base model: its preferred_endpoints, else those that list it
    under ``models``, else all of them."""
    m = c.models[base]
    if m.preferred_endpoints:
        return list(m.preferred_endpoints)
    listing = [e.name for e in c.vllm_endpoints if base in e.models]
    return listing or [e.name for e in c.vllm_endpoints]


def reasoning_for(c: RouterConfig, base: str) -> dict[str, str] | None:
    fam = c.models[base].reasoning_family
    if not fam:
        return None
    spec = c.reasoning_families.get(fam) or BUILTIN_REASONING_FAMILIES.get(fam)
    return {"type": spec.type, "parameter": spec.parameter} if spec else None


def categories_for(c: RouterConfig) -> tuple[list[dict[str, Any]], str]:
    cats = []
    for cat in c.categories:
        targets = []
        for ms in cat.model_scores:
            use = ms.use_reasoning if ms.use_reasoning is not None else cat.use_reasoning
            effort = ms.reasoning_effort or cat.reasoning_effort or c.default_reasoning_effort
            targets.append(
                {
                    "model": ms.model,
                    "adapter": ms.lora_name,
                    "score": ms.score,
                    "use_reasoning": use,
                    "reasoning_effort": effort,
                }
            )
        cats.append(
            {
                "name": cat.name,
                "system_prompt": cat.system_prompt,
                "system_prompt_mode": cat.system_prompt_mode or c.routing.system_prompt_mode,
                "targets": targets,
            }
        )
    default = default_category(c)
    if default is None:
        # No category sends the default model plainly: add one that does.
        default = "default"
        while any(x["name"] == default for x in cats):
            default = "_" + default
        cats.append(
            {
                "name": default,
                "system_prompt": None,
                "system_prompt_mode": c.routing.system_prompt_mode,
                "targets": [
                    {
                        "model": c.default_model,
                        "adapter": None,
                        "score": 1.0,
                        "use_reasoning": None,
                        "reasoning_effort": c.default_reasoning_effort,
                    }
                ],
            }
        )
    return cats, default


def signals_for(c: RouterConfig) -> list[dict[str, Any]]:
    signals: list[dict[str, Any]] = []
    if c.keyword_rules:
        signals.append({"type": "keyword", "rules": [r.model_dump() for r in c.keyword_rules]})
    return signals


def build_plan(loaded: LoadedConfig) -> dict[str, Any]:
    c = loaded.config
    s = c.server
    categories, default = categories_for(c)
    audit_path = str((loaded.base_dir / c.audit_log.path).resolve()) if c.audit_log.enabled else None
    return {
        "version": PLAN_VERSION,
        "server": {
            "max_body_bytes": s.max_body_bytes,
            "connect_timeout_ms": round(s.timeouts.connect_s * 1000),
            "request_timeout_ms": round(s.timeouts.request_s * 1000),
            "stream_idle_timeout_ms": round(s.timeouts.stream_idle_s * 1000),
            "health_interval_ms": round(s.health_check.interval_s * 1000),
            "health_timeout_ms": round(s.health_check.timeout_s * 1000),
            "drain_timeout_ms": round(s.timeouts.drain_s * 1000),
            "retry_connect_errors": c.routing.retry_connect_errors,
        },
        "endpoints": [
            {
                "name": e.name,
                "host": e.address,
                "port": e.port,
                "weight": e.weight,
                "api_key": os.environ.get(e.api_key_env) if e.api_key_env else None,
            }
            for e in c.vllm_endpoints
        ],
        "models": [
            {
                "name": base,
                "endpoints": endpoints_for(c, base),
                "reasoning": reasoning_for(c, base),
                "adapters": [{"name": lo.name} for lo in m.loras],
            }
            for base, m in c.models.items()
        ],
        "categories": categories,
        "default_category": default,
        "signals": signals_for(c),
        "routing": {
            "virtual_models": list(c.routing.virtual_models),
            "router_model_name": c.routing.virtual_models[0],
            "classify_messages": c.routing.classify_messages,
        },
        "audit": {"path": audit_path},
    }
