"""The configuration schema: vLLM Semantic Router's v0.1 format (accepted unchanged) plus
lora-router's own sections. Every default and every per-field check lives here; checks that
span fields live in ``checks.py``. Unknown keys are errors, so a typo never passes silently.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ReasoningEffort = Literal["minimal", "low", "medium", "high"]
Operator = Literal["OR", "AND", "NOR"]
SystemPromptMode = Literal["replace", "insert"]
MessagePolicy = Literal["last_user", "all_user", "conversation"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- Semantic Router v0.1 sections -------------------------------------------------------


class Lora(Strict):
    name: str = Field(min_length=1)
    description: str = ""
    path: str | None = None
    """Where replicas load it from (a directory under ``adapter_roots``); without it, only
    replicas that serve it already (``--lora-modules``) can."""
    min_replicas: int = Field(default=1, ge=1)
    """Replicas it is kept loaded on (its homes)."""
    max_replicas: int | None = Field(default=None, ge=1)
    """Replicas it may spread to under load (default: all)."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """Requests in flight to it through this router at most; beyond it, 429 (default: no cap)."""


class PiiPolicy(Strict):
    """Accepted for compatibility; lora-router does not detect PII."""

    allow_by_default: bool = True
    pii_types_allowed: list[str] = []


class BaseModelConfig(Strict):
    reasoning_family: str | None = None
    preferred_endpoints: list[str] = []
    loras: list[Lora] = []
    pii_policy: PiiPolicy | None = None
    pricing: dict[str, Any] | None = None
    param_size: str | None = None


class Endpoint(Strict):
    name: str = Field(min_length=1)
    address: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    weight: float = Field(default=1.0, gt=0)
    models: list[str] = []
    health_check_path: str | None = None
    api_key_env: str | None = None
    """Name of an environment variable holding a bearer key to send to this endpoint."""
    max_loras: int = Field(default=1, ge=1)
    """The replica's GPU LoRA slots (vLLM ``--max-loras``, default 1); its metrics correct it."""
    discovery: Literal["static", "dns"] = "static"
    """``static``: ``address`` is the one replica. ``dns``: ``address`` is a DNS name (a
    Kubernetes headless Service) and each of its A/AAAA records is a replica."""
    refresh_s: float = Field(default=5.0, gt=0)
    """With ``discovery: dns``, how often the name is looked up again."""


class ModelScore(Strict):
    model: str
    lora_name: str | None = None
    score: float = Field(ge=0.0, le=1.0)
    use_reasoning: bool | None = None
    reasoning_effort: ReasoningEffort | None = None
    reasoning_description: str | None = None


class Category(Strict):
    name: str = Field(min_length=1)
    description: str = ""
    system_prompt: str | None = None
    system_prompt_mode: SystemPromptMode | None = None
    use_reasoning: bool | None = None
    reasoning_effort: ReasoningEffort | None = None
    reasoning_description: str | None = None
    model_scores: list[ModelScore] = Field(min_length=1)
    mmlu_categories: list[str] | None = None
    jailbreak_enabled: bool | None = None
    jailbreak_threshold: float | None = None
    examples: list[str] = []
    """Utterances of this category, for the embedding classifier (with the description)."""


class ReasoningFamily(Strict):
    type: Literal["chat_template_kwargs", "reasoning_effort"]
    parameter: str = Field(min_length=1)


class KeywordRule(Strict):
    category: str
    operator: Operator = "OR"
    keywords: list[str] = Field(min_length=1)
    case_sensitive: bool = False
    whole_word: bool = True


class CategoryModel(Strict):
    model_id: str
    threshold: float = Field(default=0.6, ge=0.0, le=1.0)
    use_cpu: bool = True
    use_modernbert: bool = False
    category_mapping_path: str | None = None


class EmbeddingModel(Strict):
    """The embedding classifier. It runs whenever two or more categories carry examples or a
    description; this section only changes how."""

    enabled: bool = True
    model: str = "multilingual-e5-small"
    """A shipped model (multilingual-e5-small, all-minilm-l6-v2) or a directory with model.onnx
    and tokenizer.json."""
    method: Literal["centroid", "knn"] | None = None
    k: int | None = Field(default=None, ge=1)
    whiten: bool = True
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Calibrated confidence the top category needs; default per model."""
    margin: float | None = Field(default=None, ge=0.0, le=1.0)
    """Lead in confidence over the second category; default per model."""
    temperature: float | None = Field(default=None, gt=0.0)
    """Softmax temperature for similarities; per model, required for an uncalibrated model."""


class CustomClassifier(Strict):
    """A Python classifier (see lora_router.classifier)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    entrypoint: str
    """``module:attribute``: a function, an object with ``classify``, or a class."""
    timeout_ms: int = Field(default=50, gt=0)
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    settings: dict[str, Any] = {}


class MCPCategoryModel(Strict):
    """A classifier served over MCP, in vLLM Semantic Router's protocol."""

    enabled: bool = False
    transport_type: Literal["stdio", "streamable-http"] = "stdio"
    command: str | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    """Environment variables for a stdio server (added to a minimal inherited set)."""
    cwd: str | None = None
    """Where a stdio server runs, relative to the config file (default: its directory)."""
    url: str | None = None
    """For streamable-http, e.g. http://127.0.0.1:8090/mcp."""
    tool_name: str | None = None
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    timeout_seconds: float = Field(default=5.0, gt=0)
    cache_ttl_seconds: float = Field(default=0.0, ge=0)
    """Cache answers per text (and forwarded headers) this long; 0 turns the cache off."""
    forward_headers: list[str] | None = None
    """Headers passed to a classify tool that accepts ``headers`` (default: all but credentials)."""
    reconnect_seconds: float = Field(default=1.0, gt=0)
    """First wait before reconnecting; doubles up to 30 s."""


class Classifier(Strict):
    category_model: CategoryModel | None = None
    embedding_model: EmbeddingModel = EmbeddingModel()
    custom: list[CustomClassifier] = []
    mcp_category_model: MCPCategoryModel | None = None
    pii_model: dict[str, Any] | None = None


# --- lora-router sections ----------------------------------------------------------------


class Timeouts(Strict):
    connect_s: float = Field(default=5.0, gt=0)
    request_s: float = Field(default=600.0, gt=0)
    """Until the upstream's response headers arrive (for a non-streamed request: the whole answer)."""
    stream_idle_s: float = Field(default=300.0, gt=0)
    """Longest silence between two chunks of a response body."""
    drain_s: float = Field(default=30.0, ge=0)
    """How long shutdown waits for requests in flight; streams still open then end with a
    final error event."""


class HealthCheck(Strict):
    interval_s: float = Field(default=5.0, gt=0)
    timeout_s: float = Field(default=2.0, gt=0)


class Server(Strict):
    host: str = "0.0.0.0"
    port: int = Field(default=8801, ge=0, le=65535)
    threads: int = Field(default=0, ge=0)
    """Worker threads for the native runtime; 0 means one per core."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    timeouts: Timeouts = Timeouts()
    health_check: HealthCheck = HealthCheck()
    drain_delay_s: float = Field(default=5.0, ge=0, le=3600)
    """On SIGTERM, /readyz answers 503 at once but requests are still served this long, so
    load balancers notice before the router stops accepting (SIGINT skips the wait)."""


SignalName = Literal["keyword", "custom", "mcp", "domain", "embedding"]


class Inference(Strict):
    """How the model-based signals run their ONNX models."""

    max_tokens: int = Field(default=256, ge=8, le=512)
    """Token budget per classified text, special tokens included; longer texts are truncated
    (and the decision says so)."""
    truncation: Literal["head", "tail", "head_tail"] = "head_tail"
    sessions: int = Field(default=2, ge=1, le=64)
    """ONNX sessions per model: how many inferences run at once."""
    intra_op_threads: int = Field(default=1, ge=1, le=64)


class Routing(Strict):
    virtual_models: list[str] = Field(default_factory=lambda: ["MoM", "auto"], min_length=1)
    """Model names that ask the router to choose; the first is listed in /v1/models."""
    classify_messages: MessagePolicy = "last_user"
    signal_order: list[SignalName] = Field(default_factory=lambda: ["keyword", "custom", "mcp", "domain", "embedding"])
    """The order signals run in; the first whose confidence reaches its threshold decides."""
    evaluate_all_signals: bool = False
    """Run every signal even after one decided, so the decision records every answer."""
    system_prompt_mode: SystemPromptMode = "replace"
    retry_connect_errors: bool = True


PlacementPolicy = Literal["lora-aware", "round-robin", "least-loaded", "ray-multiplex", "llm-d-affinity"]


class Placement(Strict):
    """How a replica is chosen for a request, and how adapters are kept where they are needed."""

    policy: PlacementPolicy = "lora-aware"
    """``lora-aware`` (slots and homes); the others are there for comparison."""
    spill_threshold: int = Field(default=8, ge=1)
    """A replica this many requests above the least loaded one is saturated: an adapter spills
    from its homes only then."""
    load_timeout_s: float = Field(default=60.0, gt=0)
    """How long a request (or a registration) waits for an adapter to load."""
    reconcile_interval_s: float = Field(default=5.0, gt=0)
    """How often the registry checks that every adapter is loaded where it must be."""
    drain_timeout_s: float = Field(default=600.0, gt=0)
    """How long an unregistered adapter (or an old version) waits for its requests to finish
    before it is unloaded anyway."""


class Admin(Strict):
    api_key_env: str = "LORA_ROUTER_ADMIN_KEY"
    """The environment variable holding the admin API's key; unset: the admin API is off."""


class AuditLog(Strict):
    enabled: bool = False
    path: str = "lora-router-audit.jsonl"


class TenantLimits(Strict):
    rpm: int | None = Field(default=None, ge=1)
    """Requests per minute (wall-clock minutes)."""
    tpm: int | None = Field(default=None, ge=1)
    """Tokens per minute: prompt plus completion, from each response's usage."""


class Tenant(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    api_keys: list[str] = []
    """Salted hashes, as ``lora-router keys hash`` prints them; never plain keys."""
    api_key_env: str | None = None
    """An environment variable holding a plain key (hashed at start, never stored)."""
    api_key_file: str | None = None
    """A file holding plain keys, one per line (relative paths: relative to the config)."""
    adapters: list[str] = []
    base_models: list[str] | None = None
    """Base models it may use directly (default: the base models of its adapters)."""
    default_adapter: str | None = None
    aliases: dict[str, str] = {}
    """The tenant's own model names: alias -> one of its adapters or base models."""
    intent_routing: bool = True
    """``MoM``/``auto`` classifies, among its adapters; off: its default adapter serves."""
    limits: TenantLimits = TenantLimits()


class Arm(Strict):
    adapter: str = Field(min_length=1)
    weight: float = Field(ge=0)


class Shadow(Strict):
    adapter: str = Field(min_length=1)
    share: float = Field(default=1.0, ge=0, le=1)
    """Share of the experiment's requests copied to the candidate."""


class Experiment(Strict):
    name: str = Field(min_length=1)
    tenant: str | None = None
    category: str | None = None
    sticky_key: str = "user"
    """``tenant``, ``user`` (the request's ``user`` field) or ``header:<name>``."""
    arms: list[Arm] = Field(min_length=1)
    """The first arm is the control: requests headed for its adapter are split."""
    shadow: Shadow | None = None


class Quotas(Strict):
    redis_url: str | None = None
    """Older spelling of ``redis.url`` (kept working): counters shared through that Redis."""
    redis_prefix: str = "lora-router"
    """Older spelling of ``redis.prefix``."""
    on_backend_error: Literal["allow", "deny", "local"] = "allow"
    """What a quota check does while Redis cannot be reached: ``allow`` the request (counted
    and logged), ``deny`` it (503), or enforce limit / ``fleet.expected_replicas`` in the
    process (``local``)."""


class Redis(Strict):
    """The Redis every router of a fleet shares: quota counters, adapters and tenants
    registered at run time, experiment weights and statistics, load locks."""

    url: str = Field(min_length=1)
    """``redis://`` or ``rediss://`` (TLS) ``host[:port][/db]``."""
    username_env: str | None = None
    """Environment variable holding the ACL user name (AUTH username password)."""
    password_env: str | None = None
    """Environment variable holding the password (AUTH password, or with username_env)."""
    ca_file: str | None = None
    """CA bundle (PEM) that verifies a ``rediss://`` server (default: the system's roots)."""
    timeout_ms: int = Field(default=250, ge=1, le=60000)
    """Longest wait for a connection or an answer."""
    probe_interval_ms: int = Field(default=1000, ge=10, le=60000)
    """After a failure, requests stop waiting on Redis for this long; then one probe may pass."""
    prefix: str = Field(default="lora-router", min_length=1)
    """Prefix of every key and channel: routers with the same prefix form one fleet."""


class Fleet(Strict):
    """A router that runs as one of several replicas."""

    expected_replicas: int = Field(default=1, ge=1)
    """How many routers share the state: with ``quotas.on_backend_error: local`` each
    enforces this share of every limit while Redis is down."""
    nameservers: list[str] = []
    """DNS servers (``ip`` or ``ip:port``) for endpoints with ``discovery: dns``; default: the
    system's resolver configuration."""


class RouterConfig(Strict):
    # Semantic Router v0.1
    classifier: Classifier = Classifier()
    vllm_endpoints: list[Endpoint] = Field(min_length=1)
    models: dict[str, BaseModelConfig] = Field(alias="model_config", min_length=1)
    default_model: str
    categories: list[Category] = []
    reasoning_families: dict[str, ReasoningFamily] = {}
    default_reasoning_effort: ReasoningEffort = "medium"
    keyword_rules: list[KeywordRule] = []
    # Semantic Router sections lora-router accepts but does not act on.
    bert_model: dict[str, Any] | None = None
    semantic_cache: dict[str, Any] | None = None
    tools: dict[str, Any] | None = None
    prompt_guard: dict[str, Any] | None = None
    api: dict[str, Any] | None = None
    observability: dict[str, Any] | None = None
    # lora-router
    default_category: str | None = None
    server: Server = Server()
    inference: Inference = Inference()
    routing: Routing = Routing()
    audit_log: AuditLog = AuditLog()
    adapter_roots: list[str] = []
    """Directories every adapter path (from the config or the admin API) must lie under."""
    placement: Placement = Placement()
    admin: Admin = Admin()
    tenants: list[Tenant] = []
    """With tenants, every request needs a tenant's key; without, authentication is off."""
    experiments: list[Experiment] = []
    quotas: Quotas = Quotas()
    redis: Redis | None = None
    """Shared state for a fleet of routers; unset: everything lives in this process."""
    fleet: Fleet = Fleet()


IGNORED_SECTIONS = ("bert_model", "semantic_cache", "tools", "prompt_guard", "api", "observability")

BUILTIN_REASONING_FAMILIES: dict[str, ReasoningFamily] = {
    "qwen3": ReasoningFamily(type="chat_template_kwargs", parameter="enable_thinking"),
    "deepseek": ReasoningFamily(type="chat_template_kwargs", parameter="thinking"),
    "gpt-oss": ReasoningFamily(type="reasoning_effort", parameter="reasoning_effort"),
    "gpt": ReasoningFamily(type="reasoning_effort", parameter="reasoning_effort"),
}
