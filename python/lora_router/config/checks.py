"""Checks that span fields: names that must refer to something declared elsewhere, names
that must be unique, files that must exist. Warnings are for things that work but are
probably not what the operator meant."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from ..keys import parse_hashed
from .load import LoadedConfig, Problem
from .models import BUILTIN_REASONING_FAMILIES, IGNORED_SECTIONS


def resolve_path(loaded: LoadedConfig, value: str) -> Path | None:
    """A path from the config: absolute, else relative to the config file's directory, else
    to the working directory (Semantic Router's configs assume the latter)."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return p if p.exists() else None
    for base in (loaded.base_dir, Path.cwd()):
        candidate = (base / p).resolve()
        if candidate.exists():
            return candidate
    return None


def outside_roots(path: str, roots: list[str], base: Path) -> str | None:
    """Why an adapter path is not allowed, or None: it must be absolute (or relative to
    ``base``), free of ``..``, and lie under one of ``roots`` (also once symlinks are
    resolved, when it exists here)."""
    if "\x00" in path:
        return "the path contains a NUL byte"
    if ".." in Path(path).parts:
        return "the path may not contain '..'"
    if not roots:
        return "no adapter_roots are configured, so no adapter path is allowed"
    full = Path(os.path.normpath(base / Path(path).expanduser()))
    resolved_roots = [Path(os.path.normpath(base / Path(r).expanduser())) for r in roots]
    if not any(full == r or r in full.parents for r in resolved_roots):
        return f"{full} is not under adapter_roots ({', '.join(str(r) for r in resolved_roots)})"
    if full.exists():
        real = full.resolve()
        if not any(real == r.resolve() or r.resolve() in real.parents for r in resolved_roots):
            return f"{full} resolves to {real}, outside adapter_roots"
    return None


def cross_check(loaded: LoadedConfig) -> list[Problem]:
    c = loaded.config
    problems: list[Problem] = []

    def dupes(names: list[str]) -> set[str]:
        return {n for n, k in Counter(names).items() if k > 1}

    endpoint_names = [e.name for e in c.vllm_endpoints]
    for i, e in enumerate(c.vllm_endpoints):
        if e.name in dupes(endpoint_names):
            problems.append(Problem(f"vllm_endpoints[{i}].name", f"duplicate endpoint name '{e.name}'"))
        if e.api_key_env and not os.environ.get(e.api_key_env):
            problems.append(
                Problem(f"vllm_endpoints[{i}].api_key_env", f"environment variable {e.api_key_env} is not set")
            )

    adapter_owner: dict[str, str] = {}
    for base, m in c.models.items():
        for j, ep in enumerate(m.preferred_endpoints):
            if ep not in endpoint_names:
                problems.append(Problem(f"model_config.{base}.preferred_endpoints[{j}]", f"unknown endpoint '{ep}'"))
        for j, lora in enumerate(m.loras):
            path = f"model_config.{base}.loras[{j}].name"
            if lora.name in c.models:
                problems.append(Problem(path, f"adapter '{lora.name}' has the same name as a base model"))
            elif lora.name in adapter_owner:
                problems.append(
                    Problem(
                        path, f"adapter '{lora.name}' is already declared under model_config.{adapter_owner[lora.name]}"
                    )
                )
            else:
                adapter_owner[lora.name] = base
    for i, e in enumerate(c.vllm_endpoints):
        for j, m in enumerate(e.models):
            if m not in c.models:
                problems.append(
                    Problem(f"vllm_endpoints[{i}].models[{j}]", f"'{m}' is not declared under model_config")
                )

    if c.default_model not in c.models:
        problems.append(Problem("default_model", f"'{c.default_model}' is not declared under model_config"))

    names = [cat.name for cat in c.categories]
    for i, cat in enumerate(c.categories):
        if cat.name in dupes(names):
            problems.append(Problem(f"categories[{i}].name", f"duplicate category '{cat.name}'"))
        for j, ms in enumerate(cat.model_scores):
            path = f"categories[{i}].model_scores[{j}]"
            if ms.model not in c.models:
                problems.append(Problem(f"{path}.model", f"'{ms.model}' is not declared under model_config"))
                continue
            if ms.lora_name is not None and ms.lora_name not in {lo.name for lo in c.models[ms.model].loras}:
                problems.append(
                    Problem(
                        f"{path}.lora_name", f"'{ms.lora_name}' is not declared under model_config.{ms.model}.loras"
                    )
                )

    for i, rule in enumerate(c.keyword_rules):
        if rule.category not in names:
            problems.append(Problem(f"keyword_rules[{i}].category", f"unknown category '{rule.category}'"))
        for j, kw in enumerate(rule.keywords):
            if not kw.strip():
                problems.append(Problem(f"keyword_rules[{i}].keywords[{j}]", "empty keyword"))

    if c.default_category is not None and c.default_category not in names:
        problems.append(Problem("default_category", f"unknown category '{c.default_category}'"))

    all_models = set(c.models) | set(adapter_owner)
    for i, v in enumerate(c.routing.virtual_models):
        if v in all_models:
            problems.append(Problem(f"routing.virtual_models[{i}]", f"'{v}' is also the name of a model or adapter"))

    cm = c.classifier.category_model
    if cm is not None:
        if resolve_path(loaded, cm.model_id) is None:
            problems.append(Problem("classifier.category_model.model_id", f"path '{cm.model_id}' does not exist"))
        if cm.category_mapping_path and resolve_path(loaded, cm.category_mapping_path) is None:
            problems.append(
                Problem(
                    "classifier.category_model.category_mapping_path",
                    f"path '{cm.category_mapping_path}' does not exist",
                )
            )

    for base, m in c.models.items():
        for j, lo in enumerate(m.loras):
            key = f"model_config.{base}.loras[{j}]"
            if lo.max_replicas is not None and lo.max_replicas < lo.min_replicas:
                problems.append(Problem(f"{key}.max_replicas", "max_replicas is below min_replicas"))
            if lo.path is not None and c.adapter_roots:
                why = outside_roots(lo.path, c.adapter_roots, loaded.base_dir)
                if why:
                    problems.append(Problem(f"{key}.path", why))
    for i, root in enumerate(c.adapter_roots):
        if not Path(root).expanduser().is_absolute() and ".." in Path(root).parts:
            problems.append(Problem(f"adapter_roots[{i}]", "a root may not contain '..'"))

    custom_names = [cc.name for cc in c.classifier.custom]
    for i, cc in enumerate(c.classifier.custom):
        if cc.name in dupes(custom_names):
            problems.append(Problem(f"classifier.custom[{i}].name", f"duplicate classifier name '{cc.name}'"))
    mcp = c.classifier.mcp_category_model
    if mcp is not None and mcp.enabled:
        key = "classifier.mcp_category_model"
        if mcp.transport_type == "stdio" and not mcp.command:
            problems.append(Problem(f"{key}.command", "the stdio transport needs the command that starts the server"))
        if mcp.transport_type == "streamable-http" and not (mcp.url or "").startswith(("http://", "https://")):
            problems.append(Problem(f"{key}.url", "the streamable-http transport needs the server's http(s) URL"))
        if mcp.transport_type == "stdio" and mcp.cwd and not (loaded.base_dir / mcp.cwd).is_dir():
            problems.append(Problem(f"{key}.cwd", f"directory {loaded.base_dir / mcp.cwd} does not exist"))

    problems += tenant_problems(loaded)
    problems += redis_problems(loaded)
    problems += discovery_problems(loaded)

    if c.audit_log.enabled:
        parent = (loaded.base_dir / c.audit_log.path).resolve().parent
        if not parent.is_dir():
            problems.append(Problem("audit_log.path", f"directory {parent} does not exist"))

    loaded.warnings.extend(warnings(loaded))
    return problems


def tenant_problems(loaded: LoadedConfig, extra_adapters: dict[str, str] | None = None) -> list[Problem]:
    """Tenants, experiments and quotas: every name they use exists, every key is a salted
    hash (plain keys only through api_key_env or api_key_file), every tenant can be served.
    ``extra_adapters`` (name -> base) are those registered at run time."""
    c = loaded.config
    problems: list[Problem] = []
    owner = {lo.name: base for base, m in c.models.items() for lo in m.loras}
    owner.update(extra_adapters or {})
    names = [t.name for t in c.tenants]
    for i, t in enumerate(c.tenants):
        key = f"tenants[{i}]"
        if names.count(t.name) > 1:
            problems.append(Problem(f"{key}.name", f"duplicate tenant name '{t.name}'"))
        for j, v in enumerate(t.api_keys):
            if parse_hashed(v) is None:
                problems.append(
                    Problem(
                        f"{key}.api_keys[{j}]",
                        "not a salted hash (sha256:<salt>:<digest>); make one with `lora-router keys hash`, "
                        "or give a plain key through api_key_env or api_key_file",
                    )
                )
        if t.api_key_env and not os.environ.get(t.api_key_env, "").strip():
            problems.append(Problem(f"{key}.api_key_env", f"environment variable {t.api_key_env} is not set"))
        if t.api_key_file:
            path = loaded.base_dir / t.api_key_file
            try:
                lines = [x.strip() for x in path.read_text(encoding="utf-8").splitlines()]
                if not [x for x in lines if x and not x.startswith("#")]:
                    problems.append(Problem(f"{key}.api_key_file", f"{path} holds no key"))
            except OSError as e:
                problems.append(Problem(f"{key}.api_key_file", f"cannot read {path}: {e.strerror or e}"))
        if not (t.api_keys or t.api_key_env or t.api_key_file):
            problems.append(Problem(f"{key}.api_keys", "a tenant needs at least one key"))
        for j, a in enumerate(t.adapters):
            if a not in owner:
                problems.append(Problem(f"{key}.adapters[{j}]", f"unknown adapter '{a}'"))
        for j, b in enumerate(t.base_models or []):
            if b not in c.models:
                problems.append(Problem(f"{key}.base_models[{j}]", f"unknown base model '{b}'"))
        bases = set(t.base_models) if t.base_models is not None else {owner[a] for a in t.adapters if a in owner}
        if t.default_adapter is not None and t.default_adapter not in t.adapters:
            problems.append(
                Problem(f"{key}.default_adapter", f"'{t.default_adapter}' is not one of the tenant's adapters")
            )
        for alias, to in t.aliases.items():
            if to not in t.adapters and to not in bases:
                problems.append(
                    Problem(f"{key}.aliases.{alias}", f"'{to}' is not one of the tenant's adapters or base models")
                )
            elif alias in owner or alias in c.models:
                problems.append(Problem(f"{key}.aliases.{alias}", f"'{alias}' already names an adapter or base model"))
        if not t.adapters and not bases:
            problems.append(Problem(f"{key}.adapters", "the tenant may use no adapter and no base model"))

    categories = {cat.name for cat in c.categories}
    exp_names = [e.name for e in c.experiments]
    for i, e in enumerate(c.experiments):
        key = f"experiments[{i}]"
        if exp_names.count(e.name) > 1:
            problems.append(Problem(f"{key}.name", f"duplicate experiment name '{e.name}'"))
        if (e.tenant is None) == (e.category is None):
            problems.append(Problem(key, "an experiment needs exactly one of tenant or category"))
        if e.tenant is not None and e.tenant not in names:
            problems.append(Problem(f"{key}.tenant", f"unknown tenant '{e.tenant}'"))
        if e.category is not None and e.category not in categories:
            problems.append(Problem(f"{key}.category", f"unknown category '{e.category}'"))
        header = e.sticky_key.startswith("header:") and e.sticky_key[7:].strip()
        if not (e.sticky_key in ("tenant", "user") or header):
            problems.append(Problem(f"{key}.sticky_key", "must be tenant, user or header:<name>"))
        if sum(a.weight for a in e.arms) <= 0:
            problems.append(Problem(f"{key}.arms", "at least one weight must be above 0"))
        arm_names = [a.adapter for a in e.arms]
        candidates = arm_names + ([e.shadow.adapter] if e.shadow else [])
        for j, a in enumerate(arm_names):
            if arm_names.count(a) > 1:
                problems.append(Problem(f"{key}.arms[{j}].adapter", f"'{a}' is an arm twice"))
        for j, a in enumerate(candidates):
            where = f"{key}.arms[{j}].adapter" if j < len(arm_names) else f"{key}.shadow.adapter"
            if a not in owner:
                problems.append(Problem(where, f"unknown adapter '{a}'"))
            elif owner[a] != owner.get(candidates[0]):
                problems.append(Problem(where, f"'{a}' is not on the control's base model"))
            elif e.tenant in names:
                t = c.tenants[names.index(e.tenant)]
                if a not in t.adapters:
                    problems.append(Problem(where, f"tenant '{e.tenant}' may not use '{a}'; add it to its adapters"))
    return problems


def redis_problems(loaded: LoadedConfig) -> list[Problem]:
    """The shared state's Redis: one way of naming it, a URL the client can use, credentials
    that are set, a CA file that exists."""
    from urllib.parse import urlsplit

    c = loaded.config
    problems: list[Problem] = []
    if c.quotas.redis_url is not None and c.redis is not None:
        problems.append(
            Problem("quotas.redis_url", "give the Redis in one place: the redis section (this is its old name)")
        )
    url, where = (c.redis.url, "redis.url") if c.redis else (c.quotas.redis_url, "quotas.redis_url")
    if url is not None:
        parts = urlsplit(url)
        port_ok = True
        try:
            parts.port  # noqa: B018 (a bad port raises)
        except ValueError:
            port_ok = False
        db = parts.path.strip("/")
        if parts.scheme not in ("redis", "rediss") or not parts.hostname or not port_ok:
            problems.append(Problem(where, "must be a redis:// or rediss:// (TLS) URL: scheme://host[:port][/db]"))
        elif db and not db.isdigit():
            problems.append(Problem(where, f"'{db}' is not a database number"))
        elif parts.password:
            problems.append(
                Problem(where, "credentials in the URL are not accepted: use redis.username_env and redis.password_env")
            )
    if c.redis is not None:
        for key in ("username_env", "password_env"):
            var = getattr(c.redis, key)
            if var and not os.environ.get(var):
                problems.append(Problem(f"redis.{key}", f"environment variable {var} is not set"))
        if c.redis.username_env and not c.redis.password_env:
            problems.append(Problem("redis.password_env", "a user name needs a password (AUTH username password)"))
        if c.redis.ca_file and resolve_path(loaded, c.redis.ca_file) is None:
            problems.append(Problem("redis.ca_file", f"{c.redis.ca_file} does not exist"))
        if c.redis.ca_file and not c.redis.url.startswith("rediss://"):
            problems.append(Problem("redis.ca_file", "a CA file verifies TLS: the URL must be rediss://"))
    return problems


def _nameserver_ok(value: str) -> bool:
    """``ip``, ``ip:port`` or ``[ipv6]:port``."""
    import ipaddress

    host, port = value, None
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":") if rest else None
    elif value.count(":") == 1:
        host, port = value.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return port is None or (port.isdigit() and 0 < int(port) < 65536)


def discovery_problems(loaded: LoadedConfig) -> list[Problem]:
    """The nameservers that resolve endpoints with ``discovery: dns``."""
    return [
        Problem(f"fleet.nameservers[{i}]", "must be an IP address, optionally with :port ([ipv6]:port)")
        for i, ns in enumerate(loaded.config.fleet.nameservers)
        if not _nameserver_ok(ns)
    ]


def domain_mapping(loaded: LoadedConfig) -> tuple[Path | None, Path | None]:
    """The domain classifier's directory and its category_mapping.json, if they exist."""
    cm = loaded.config.classifier.category_model
    if cm is None:
        return None, None
    model_dir = resolve_path(loaded, cm.model_id)
    if cm.category_mapping_path:
        mapping = resolve_path(loaded, cm.category_mapping_path)
    else:
        mapping = model_dir / "category_mapping.json" if model_dir else None
    return model_dir, mapping


def domain_labels(mapping: Path) -> list[str]:
    """Label names in output order from Semantic Router's category_mapping.json."""
    data = json.loads(mapping.read_text(encoding="utf-8"))
    if "idx_to_category" in data:
        by_index = {int(k): v for k, v in data["idx_to_category"].items()}
    elif "category_to_idx" in data:
        by_index = {int(v): k for k, v in data["category_to_idx"].items()}
    else:
        raise ValueError("expected idx_to_category or category_to_idx")
    if sorted(by_index) != list(range(len(by_index))):
        raise ValueError("label indexes must run from 0 without gaps")
    return [by_index[i] for i in range(len(by_index))]


def check_domain_model(loaded: LoadedConfig) -> list[Problem]:
    cm = loaded.config.classifier.category_model
    if cm is None:
        return []
    key = "classifier.category_model"
    model_dir, mapping = domain_mapping(loaded)
    if model_dir is None:
        return [Problem(f"{key}.model_id", f"path '{cm.model_id}' does not exist")]
    problems = []
    for required in ("model.onnx", "tokenizer.json"):
        if not (model_dir / required).is_file():
            problems.append(
                Problem(
                    f"{key}.model_id",
                    f"{model_dir} has no {required} (lora-router runs ONNX classifiers; `lora-router train` makes one)",
                )
            )
    if cm.category_mapping_path and mapping is None:
        problems.append(Problem(f"{key}.category_mapping_path", f"path '{cm.category_mapping_path}' does not exist"))
    elif mapping is None or not mapping.is_file():
        problems.append(Problem(f"{key}.model_id", f"{model_dir} has no category_mapping.json"))
    else:
        try:
            domain_labels(mapping)
        except (ValueError, KeyError, TypeError) as e:
            problems.append(Problem(f"{key}.category_mapping_path", f"{mapping}: {e}"))
    return problems


def names_list(names: list[str], most: int = 6) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def embedding_categories(c) -> list:
    """Categories the embedding classifier compares: those with examples or a description."""
    return [cat for cat in c.categories if cat.examples or cat.description.strip()]


def warnings(loaded: LoadedConfig) -> list[str]:
    c = loaded.config
    out = []
    if c.tenants and not os.environ.get(c.admin.api_key_env):
        out.append(
            f"tenants: /metrics and the admin API need the admin key, and {c.admin.api_key_env} is not set: "
            "both are off"
        )
    em = c.classifier.embedding_model
    with_texts = embedding_categories(c)
    if em.enabled and "embedding" in c.routing.signal_order:
        if len(with_texts) == 1:
            out.append(
                f"categories: only '{with_texts[0].name}' has examples or a description; the embedding classifier "
                "needs two categories to compare and is off"
            )
        elif len(with_texts) >= 2:
            zero_shot = [cat.name for cat in with_texts if not cat.examples]
            if zero_shot:
                out.append(
                    f"categories {names_list(zero_shot)} have a description but no examples: the embedding classifier "
                    "works zero-shot for them, and about 10 examples each make it markedly more accurate"
                )
            never = [cat.name for cat in c.categories if cat not in with_texts]
            if never:
                out.append(
                    f"categories {names_list(never)} have no examples or description, so the embedding classifier "
                    "never picks them"
                )
    _, mapping = domain_mapping(loaded)
    if mapping is not None and mapping.is_file():
        try:
            unknown = [lab for lab in domain_labels(mapping) if lab not in {x.name for x in c.categories}]
        except (ValueError, KeyError, TypeError):
            unknown = []
        if unknown:
            out.append(
                f"classifier.category_model: labels {', '.join(unknown)} are not categories of this config; "
                "the domain classifier abstains when it predicts them"
            )
    if c.classifier.custom and "custom" not in c.routing.signal_order:
        out.append("classifier.custom: 'custom' is not in routing.signal_order, so these classifiers never run")
    mcp = c.classifier.mcp_category_model
    if mcp is not None and mcp.enabled and "mcp" not in c.routing.signal_order:
        out.append("classifier.mcp_category_model: 'mcp' is not in routing.signal_order, so it never runs")
    for section in IGNORED_SECTIONS:
        if getattr(c, section) is not None:
            out.append(f"{section}: accepted for Semantic Router compatibility, not used by lora-router")
    for base, m in c.models.items():
        fam = m.reasoning_family
        if fam and fam not in c.reasoning_families and fam not in BUILTIN_REASONING_FAMILIES:
            out.append(
                f"model_config.{base}.reasoning_family: '{fam}' is not defined under reasoning_families; "
                "use_reasoning is not written into requests for this model"
            )
        if m.pii_policy is not None:
            out.append(f"model_config.{base}.pii_policy: accepted, not enforced (lora-router has no PII detector)")
    for i, cat in enumerate(c.categories):
        if cat.jailbreak_enabled is not None or cat.jailbreak_threshold is not None:
            out.append(f"categories[{i}]: jailbreak settings accepted, not enforced")
    if c.classifier.pii_model is not None:
        out.append("classifier.pii_model: accepted, not used")
    return out
