"""From a validated config to the plan the native core compiles: plain data with every
default resolved. The plan's shape is rust/plan/schema.rs; the two change together."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any

from ..keys import hash_key, key_id, parse_hashed
from ..models import ModelDir, ModelError, open_model, resolve_encoder
from .checks import domain_labels, domain_mapping, embedding_categories
from .load import ConfigError, LoadedConfig, Problem
from .models import BUILTIN_REASONING_FAMILIES, RouterConfig, Tenant

log = logging.getLogger("lora_router.config")

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


def default_model_category(c: RouterConfig, name: str, system_prompt: str | None) -> dict[str, Any]:
    """A category the config does not define, served by the default model without an adapter."""
    target = {
        "model": c.default_model,
        "adapter": None,
        "score": 1.0,
        "use_reasoning": None,
        "reasoning_effort": c.default_reasoning_effort,
    }
    return {
        "name": name,
        "system_prompt": system_prompt,
        "system_prompt_mode": c.routing.system_prompt_mode,
        "targets": [target],
    }


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
        cats.append(default_model_category(c, default, None))
    return cats, default


def model_spec(c: RouterConfig, model: ModelDir) -> dict[str, Any]:
    i = c.inference
    return {
        "name": model.name,
        "model": str(model.model_file),
        "tokenizer": str(model.tokenizer_file),
        "max_tokens": i.max_tokens,
        "truncation": i.truncation,
        "sessions": i.sessions,
        "intra_threads": i.intra_op_threads,
    }


def embedding_signal(loaded: LoadedConfig) -> dict[str, Any] | None:
    c = loaded.config
    em = c.classifier.embedding_model
    cats = embedding_categories(c)
    if not em.enabled or len(cats) < 2:
        return None
    try:
        model = resolve_encoder(em.model, loaded.base_dir)
    except ModelError as e:
        raise ConfigError(loaded.file, [Problem("classifier.embedding_model.model", str(e))]) from None
    cal = model.calibration
    if em.temperature is None and "temperature" not in cal:
        raise ConfigError(
            loaded.file,
            [
                Problem(
                    "classifier.embedding_model.temperature",
                    f"model {model.name} carries no calibration: set a temperature (tune it with `lora-router eval`)",
                )
            ],
        )
    temperature = em.temperature or cal["temperature"]
    return {
        "type": "embedding",
        "model": model_spec(c, model),
        "method": em.method or cal.get("method", "centroid"),
        "k": em.k or cal.get("k", 3),
        "whiten": em.whiten,
        "temperature": temperature,
        "cosine_temperature": em.temperature or cal.get("cosine_temperature", temperature),
        "threshold": em.threshold if em.threshold is not None else cal.get("threshold", 0.3),
        "margin": em.margin if em.margin is not None else cal.get("margin", 0.0),
        "categories": [
            {"category": cat.name, "texts": [*cat.examples, *([cat.description] if cat.description.strip() else [])]}
            for cat in cats
        ],
    }


def domain_signal(loaded: LoadedConfig) -> dict[str, Any] | None:
    c = loaded.config
    cm = c.classifier.category_model
    if cm is None:
        return None
    model_dir, mapping = domain_mapping(loaded)
    try:
        model = open_model(model_dir)
    except ModelError as e:
        raise ConfigError(loaded.file, [Problem("classifier.category_model.model_id", str(e))]) from None
    names = {cat.name for cat in c.categories}
    return {
        "type": "domain",
        "model": model_spec(c, model),
        "labels": [label if label in names else None for label in domain_labels(mapping)],
        "threshold": cm.threshold,
    }


def mcp_enabled(c: RouterConfig) -> bool:
    m = c.classifier.mcp_category_model
    return m is not None and m.enabled and "mcp" in c.routing.signal_order


def signals_for(loaded: LoadedConfig) -> list[dict[str, Any]]:
    """The configured signals, in ``routing.signal_order``. Custom and MCP classifiers are
    `external` signals: the Python layer registers a classifier under each name
    (lora_router.plugins)."""
    c = loaded.config
    mcp = c.classifier.mcp_category_model
    built: dict[str, list[dict[str, Any]]] = {
        "keyword": [{"type": "keyword", "rules": [r.model_dump() for r in c.keyword_rules]}] if c.keyword_rules else [],
        "custom": [
            {"type": "external", "name": f"custom:{cc.name}", "timeout_ms": cc.timeout_ms, "threshold": cc.threshold}
            for cc in c.classifier.custom
        ],
        # The MCP client enforces timeout_seconds itself; the margin lets it report why.
        "mcp": [
            {
                "type": "external",
                "name": "mcp",
                "timeout_ms": round(mcp.timeout_seconds * 1000) + 100,
                "threshold": mcp.threshold,
            }
        ]
        if mcp_enabled(c)
        else [],
        "domain": [s for s in [domain_signal(loaded)] if s],
        "embedding": [s for s in [embedding_signal(loaded)] if s],
    }
    return [s for name in c.routing.signal_order for s in built[name]]


def uses_models(plan: dict[str, Any]) -> bool:
    return any(s["type"] in ("embedding", "domain") for s in plan["signals"])


def server_categories(c: RouterConfig, extra: Any) -> list[dict[str, Any]]:
    """Categories an MCP server listed that the config lacks (the config wins for the
    others): they route to the default model, with the server's system prompt."""
    if extra is None:
        return []
    known = {cat.name for cat in c.categories}
    return [
        default_model_category(c, name, extra.system_prompts.get(name)) for name in extra.names if name not in known
    ]


def adapters_for(loaded: LoadedConfig, base: str, registered: Any) -> list[dict[str, Any]]:
    """A base model's adapters: the config's, then those registered at run time
    (``registered``: lora_router.registry's view), each under its current served name."""
    out = []
    for lo in loaded.config.models[base].loras:
        current = registered.current(lo.name) if registered is not None else None
        out.append(
            {
                "name": lo.name,
                "served_name": current.served_name if current else lo.name,
                "path": current.path if current else adapter_path(loaded, lo.path),
                "min_replicas": lo.min_replicas,
                "max_replicas": lo.max_replicas,
                "max_concurrency": lo.max_concurrency,
            }
        )
    if registered is not None:
        out += [a.plan_entry() for a in registered.runtime_adapters(base)]
    return out


def adapter_path(loaded: LoadedConfig, path: str | None) -> str | None:
    """An adapter path from the config, absolute (relative ones are relative to the config)."""
    if path is None:
        return None
    return os.path.normpath(os.path.join(loaded.base_dir, os.path.expanduser(path)))


def tenant_keys(loaded: LoadedConfig, t: Tenant) -> list[dict[str, str]]:
    """A tenant's keys for the plan, all hashed: stored hashes as they are, plain keys from
    its environment variable or key file hashed with a fresh salt, once per load."""
    out = []
    for value in t.api_keys:
        salt, digest = parse_hashed(value)  # checked already
        out.append({"id": key_id(t.name, digest), "salt_hex": salt, "digest_hex": digest})
    if t.api_key_env or t.api_key_file:
        if t.name not in loaded.plain_keys:
            loaded.plain_keys[t.name] = hash_plain_keys(loaded, t)
        out += loaded.plain_keys[t.name]
    return out


def hash_plain_keys(loaded: LoadedConfig, t: Tenant) -> list[dict[str, str]]:
    plain: list[tuple[str, str]] = []
    if t.api_key_env:
        plain.append((f"{t.name}/env:{t.api_key_env}", os.environ[t.api_key_env].strip()))
    if t.api_key_file:
        lines = (loaded.base_dir / t.api_key_file).read_text(encoding="utf-8").splitlines()
        keys = [x.strip() for x in lines if x.strip() and not x.strip().startswith("#")]
        plain += [(f"{t.name}/file:{n + 1}", k) for n, k in enumerate(keys)]
    out = []
    for ident, key in plain:
        # A salt fixed by the tenant and key id: routers with the same config build the same
        # plan (and plan hash), and the plain key still never reaches the plan.
        salt = hashlib.sha256(f"lora-router key salt\0{t.name}\0{ident}".encode()).digest()[:16]
        salt_hex, digest = parse_hashed(hash_key(key, salt))
        out.append({"id": ident, "salt_hex": salt_hex, "digest_hex": digest})
    return out


def tenants_for(loaded: LoadedConfig, models: list[dict[str, Any]], runtime: list[Tenant]) -> list[dict[str, Any]]:
    """The tenants for the plan: the config's, then those added at run time. Names of
    adapters that are gone (a run-time adapter unregistered) are left out, so a tenant never
    stops the plan from compiling; what it may use shrinks instead."""
    owner = {a["name"]: m["name"] for m in models for a in m["adapters"]}
    bases = {m["name"] for m in models}
    out = []
    for t in [*loaded.config.tenants, *runtime]:
        adapters = [a for a in t.adapters if a in owner]
        dropped = sorted(set(t.adapters) - set(adapters))
        if dropped:
            log.warning("tenant %s: adapters %s are not served any more", t.name, ", ".join(dropped))
        mine = set(adapters) | (set(t.base_models) if t.base_models is not None else {owner[a] for a in adapters})
        out.append(
            {
                "name": t.name,
                "keys": tenant_keys(loaded, t),
                "adapters": adapters,
                "base_models": sorted(t.base_models if t.base_models is not None else {owner[a] for a in adapters}),
                "default_adapter": t.default_adapter if t.default_adapter in owner else None,
                "aliases": sorted((k, v) for k, v in t.aliases.items() if v in mine and (v in owner or v in bases)),
                "intent_routing": t.intent_routing,
                "rpm": t.limits.rpm,
                "tpm": t.limits.tpm,
            }
        )
    return out


def sticky(value: str) -> dict[str, str]:
    if value.startswith("header:"):
        return {"type": "header", "name": value.removeprefix("header:").strip().lower()}
    return {"type": value}


def experiments_for(c: RouterConfig) -> list[dict[str, Any]]:
    return [
        {
            "name": e.name,
            "tenant": e.tenant,
            "category": e.category,
            "sticky": sticky(e.sticky_key),
            "arms": [{"adapter": a.adapter, "weight": a.weight} for a in e.arms],
            "shadow": {"adapter": e.shadow.adapter, "share": e.shadow.share} if e.shadow else None,
        }
        for e in c.experiments
    ]


def store_for(c: RouterConfig) -> dict[str, Any]:
    """Where shared state lives: the ``redis`` section (or the older ``quotas.redis_url``),
    with credentials read from the environment; else in the process."""
    url = c.redis.url if c.redis else c.quotas.redis_url
    prefix = c.redis.prefix if c.redis else c.quotas.redis_prefix
    if url is None:
        return {"redis": None, "prefix": prefix}
    r = c.redis
    return {
        "redis": {
            "url": url,
            "username": os.environ.get(r.username_env) if r and r.username_env else None,
            "password": os.environ.get(r.password_env) if r and r.password_env else None,
            "ca_file": r.ca_file if r else None,
            "timeout_ms": r.timeout_ms if r else 250,
            "probe_interval_ms": r.probe_interval_ms if r else 1000,
            "on_error": c.quotas.on_backend_error,
            "expected_replicas": c.fleet.expected_replicas,
        },
        "prefix": prefix,
    }


def endpoint_discovery(e: Any) -> dict[str, Any]:
    if e.discovery == "dns":
        return {"type": "dns", "refresh_ms": round(e.refresh_s * 1000)}
    return {"type": "static"}


def plan_hash(plan: dict[str, Any]) -> str:
    """SHA-256 of the plan in canonical JSON (sorted keys, no spaces), without its own hash:
    routers running the same configuration and run-time state show the same value."""
    body = {k: v for k, v in plan.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def build_plan(
    loaded: LoadedConfig, extra_categories: Any = None, registered: Any = None, tenants: Any = None
) -> dict[str, Any]:
    """The plan for a config; ``extra_categories`` are those an MCP server listed;
    ``registered`` is the adapter registry (run-time adapters and versions); ``tenants`` the
    tenants added at run time (lora_router.registry.tenants)."""
    c = loaded.config
    s = c.server
    categories, default = categories_for(c)
    categories += [
        x for x in server_categories(c, extra_categories) if x["name"] not in {y["name"] for y in categories}
    ]
    audit_path = str((loaded.base_dir / c.audit_log.path).resolve()) if c.audit_log.enabled else None
    models = [
        {
            "name": base,
            "endpoints": endpoints_for(c, base),
            "reasoning": reasoning_for(c, base),
            "adapters": adapters_for(loaded, base, registered),
        }
        for base in c.models
    ]
    plan = {
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
                "max_loras": e.max_loras,
                "discovery": endpoint_discovery(e),
            }
            for e in c.vllm_endpoints
        ],
        "models": models,
        "categories": categories,
        "default_category": default,
        "signals": signals_for(loaded),
        "routing": {
            "virtual_models": list(c.routing.virtual_models),
            "router_model_name": c.routing.virtual_models[0],
            "classify_messages": c.routing.classify_messages,
            "evaluate_all_signals": c.routing.evaluate_all_signals,
        },
        "placement": {
            "policy": c.placement.policy,
            "spill_threshold": c.placement.spill_threshold,
            "load_timeout_ms": round(c.placement.load_timeout_s * 1000),
        },
        "audit": {"path": audit_path},
        "admin_key": os.environ.get(c.admin.api_key_env) or None,
        "tenants": tenants_for(loaded, models, list(tenants.runtime.values()) if tenants is not None else []),
        "experiments": experiments_for(c),
        "store": store_for(c),
        "fleet": {"nameservers": list(c.fleet.nameservers)},
    }
    plan["hash"] = plan_hash(plan)
    return plan
