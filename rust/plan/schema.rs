//! The plan as Python writes it: plain data, every default already resolved, every
//! user-facing check already done (python/lora_router/config). Rust deserialises it with
//! `deny_unknown_fields`, so the two sides cannot drift silently.

use serde::Deserialize;

pub use crate::state::store::{RedisSpec, StoreErrorPolicy, StoreSpec};

pub const PLAN_VERSION: u32 = 1;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    pub version: u32,
    pub server: ServerSpec,
    pub endpoints: Vec<EndpointSpec>,
    pub models: Vec<BaseModelSpec>,
    pub categories: Vec<CategorySpec>,
    /// Name of the category that serves when no signal decides. Always one of `categories`.
    pub default_category: String,
    /// Signals in evaluation order.
    pub signals: Vec<SignalSpec>,
    pub routing: RoutingSpec,
    pub placement: PlacementSpec,
    pub audit: AuditSpec,
    /// The admin API's bearer key (from the environment, resolved by Python); `None`: off.
    pub admin_key: Option<String>,
    /// Tenants and their keys; empty: authentication is off (a single-tenant deployment).
    pub tenants: Vec<TenantSpec>,
    /// A/B splits between adapters (tenants/experiments.rs).
    pub experiments: Vec<ExperimentSpec>,
    /// Where the state routers share lives (state/store). Read when the router starts: a
    /// reload that changes it needs a restart.
    pub store: StoreSpec,
    pub fleet: FleetSpec,
    /// SHA-256 of the canonical plan without this field (Python computes it).
    pub hash: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    pub name: String,
    /// Salted SHA-256 hashes of the tenant's keys (plain keys from the environment or a file
    /// were hashed by Python); never a plain key.
    pub keys: Vec<KeySpec>,
    /// Adapter names (as clients call them) the tenant may use.
    pub adapters: Vec<String>,
    /// Base models the tenant may use (Python defaults them to its adapters' bases).
    pub base_models: Vec<String>,
    pub default_adapter: Option<String>,
    /// The tenant's own model names for its adapters or base models.
    pub aliases: Vec<(String, String)>,
    /// `MoM`/`auto` classifies (among the tenant's adapters); off: the default serves.
    pub intent_routing: bool,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// What logs and the audit log show instead of the key.
    pub id: String,
    pub salt_hex: String,
    /// SHA-256 of salt bytes followed by the key's bytes.
    pub digest_hex: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    pub name: String,
    /// Splits requests of this tenant ...
    pub tenant: Option<String>,
    /// ... or of this category (exactly one of the two).
    pub category: Option<String>,
    pub sticky: StickyKey,
    /// The first arm is the control.
    pub arms: Vec<ArmSpec>,
    pub shadow: Option<ShadowSpec>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", content = "name", rename_all = "snake_case")]
pub enum StickyKey {
    Tenant,
    User,
    Header(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmSpec {
    pub adapter: String,
    pub weight: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowSpec {
    /// The candidate that gets a copy; its answer is discarded.
    pub adapter: String,
    /// Share of the experiment's requests copied, 0..1.
    pub share: f64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FleetSpec {
    /// DNS servers (`ip` or `ip:port`) that resolve endpoints with `discovery: dns`; empty:
    /// the system's resolver configuration.
    pub nameservers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    pub max_body_bytes: usize,
    pub connect_timeout_ms: u64,
    /// Time allowed until the upstream's response headers arrive.
    pub request_timeout_ms: u64,
    /// Longest silence allowed between two body chunks from upstream.
    pub stream_idle_timeout_ms: u64,
    pub health_interval_ms: u64,
    pub health_timeout_ms: u64,
    /// How long a graceful shutdown waits for in-flight requests.
    pub drain_timeout_ms: u64,
    pub retry_connect_errors: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub weight: f64,
    /// Bearer key sent upstream (from the environment, resolved by Python).
    pub api_key: Option<String>,
    /// The replica's GPU LoRA slots (vLLM `--max-loras`).
    pub max_loras: usize,
    pub discovery: Discovery,
}

/// How an endpoint's replicas are found.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Discovery {
    /// `host` is the one replica.
    Static,
    /// `host` is a DNS name; each A/AAAA record is a replica, looked up every `refresh_ms`.
    Dns { refresh_ms: u64 },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseModelSpec {
    pub name: String,
    /// Endpoints that serve this base model, in preference order (names from `endpoints`).
    pub endpoints: Vec<String>,
    pub reasoning: Option<ReasoningSpec>,
    pub adapters: Vec<AdapterSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterSpec {
    /// What clients and categories call it.
    pub name: String,
    /// What vLLM serves it as: the name, or a versioned name (`name--v2`) after a new version.
    pub served_name: String,
    /// Where replicas load it from; `None`: only replicas that serve it statically.
    pub path: Option<String>,
    /// How many replicas it lives on at least (its homes).
    pub min_replicas: usize,
    /// How many replicas it may spread to under load; `None`: all.
    pub max_replicas: Option<usize>,
    /// Requests in flight through this router at most; `None`: no cap.
    pub max_concurrency: Option<usize>,
}

/// How a replica is chosen for a request (replicas/select.rs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementSpec {
    pub policy: Policy,
    /// A replica this many requests above the least loaded one is saturated.
    pub spill_threshold: u64,
    /// How long a request waits for an on-demand adapter load.
    pub load_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    LoraAware,
    RoundRobin,
    LeastLoaded,
    RayMultiplex,
    #[serde(rename = "llm-d-affinity")]
    LlmdAffinity,
}

/// How `use_reasoning` / `reasoning_effort` are written into an upstream request.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReasoningSpec {
    /// `chat_template_kwargs.<parameter> = true|false` (qwen3 `enable_thinking`, deepseek `thinking`).
    ChatTemplateKwargs { parameter: String },
    /// Top-level `<parameter> = "<effort>"` when reasoning is on; removed when off (gpt-oss).
    ReasoningEffort { parameter: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategorySpec {
    pub name: String,
    pub system_prompt: Option<String>,
    pub system_prompt_mode: SystemPromptMode,
    /// The category's model_scores; Rust orders them by score.
    pub targets: Vec<TargetSpec>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SystemPromptMode {
    /// Overwrite the first system message, or add one at the front.
    Replace,
    /// Put the prompt before the existing system message (`prompt + "\n\n" + existing`).
    Insert,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub model: String,
    pub adapter: Option<String>,
    pub score: f64,
    pub use_reasoning: Option<bool>,
    pub reasoning_effort: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SignalSpec {
    Keyword {
        rules: Vec<KeywordRuleSpec>,
    },
    /// Similarity of the request's embedding to each category's examples and description.
    Embedding {
        model: ModelSpec,
        method: EmbeddingMethod,
        /// Examples per category averaged by `knn`.
        k: usize,
        /// Centre and whiten before comparing centroids (when some category has two texts).
        whiten: bool,
        /// Softmax temperature that turns whitened similarities into confidences (per model).
        temperature: f64,
        /// The same for plain cosine similarities (zero-shot, knn, or `whiten: false`).
        cosine_temperature: f64,
        /// Confidence the top category needs to decide.
        threshold: f64,
        /// Lead in confidence the top category needs over the second.
        margin: f64,
        categories: Vec<EmbeddingCategorySpec>,
    },
    /// A classifier outside the core (a custom Python classifier, the MCP classifier),
    /// registered under `name` when the plan is compiled.
    External {
        name: String,
        timeout_ms: u64,
        threshold: f64,
    },
    /// A fine-tuned sequence classifier whose labels map to categories.
    Domain {
        model: ModelSpec,
        /// Category for each output index; `None` for labels the config has no category for.
        labels: Vec<Option<String>>,
        threshold: f64,
    },
}

pub use crate::inference::{ModelSpec, Truncation};

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingMethod {
    /// Cosine similarity to the normalised mean of a category's texts.
    Centroid,
    /// Mean cosine similarity to the category's `k` most similar texts.
    Knn,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingCategorySpec {
    pub category: String,
    /// The category's examples and description, embedded when the plan is compiled.
    pub texts: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordRuleSpec {
    pub category: String,
    pub operator: KeywordOperator,
    pub keywords: Vec<String>,
    pub case_sensitive: bool,
    pub whole_word: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum KeywordOperator {
    /// Any keyword present.
    Or,
    /// Every keyword present.
    And,
    /// No keyword present.
    Nor,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingSpec {
    /// Model names that ask the router to choose (`MoM`, `auto`), compared case-insensitively.
    pub virtual_models: Vec<String>,
    /// The name listed first in `/v1/models`.
    pub router_model_name: String,
    pub classify_messages: MessagePolicy,
    /// Run every signal even after one decided, so the record shows every answer.
    pub evaluate_all_signals: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MessagePolicy {
    LastUser,
    AllUser,
    Conversation,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSpec {
    /// JSON-lines file; `None` turns the audit log off.
    pub path: Option<String>,
}
