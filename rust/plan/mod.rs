//! The compiled plan: everything a request needs, built once from a `PlanSpec` and then
//! shared read-only (`Arc<Plan>`). A reload builds a new plan and swaps it in; requests in
//! flight keep the plan they started with.
//!
//! The plan is configuration only. What changes while the router runs (replicas, counters,
//! run-time weights, statistics) lives in state/; the plan holds handles to it, taken from the
//! `LiveState` when it compiles, so a reload finds the same state by name.
//!
//! Python has already checked what users can get wrong; `Plan::compile` only rejects a plan
//! that is inconsistent in itself (a dangling name), with the path of the offending field.

pub mod schema;

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::signals::{Externals, Signal};
use crate::state::LiveState;
use crate::tenants::experiments::Experiment;
use crate::tenants::Tenants;
use crate::util::hash;
pub use schema::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub path: String,
    pub message: String,
}

impl PlanError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        PlanError { path: path.into(), message: message.into() }
    }
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for PlanError {}

pub struct Plan {
    pub server: ServerSpec,
    /// The configured endpoints; their replicas (one, or one per address a DNS name resolves
    /// to) are in `LiveState::replicas`.
    pub endpoints: Vec<EndpointSpec>,
    pub bases: Vec<BaseModel>,
    /// Every name a client may send as `model` (base models and adapters).
    pub models: HashMap<String, ModelRef>,
    pub categories: Vec<Category>,
    pub category_index: HashMap<String, usize>,
    pub default_category: usize,
    pub signals: Vec<Signal>,
    /// Lower-cased names that ask the router to choose.
    pub virtual_models: Vec<String>,
    pub router_model_name: String,
    pub classify_messages: MessagePolicy,
    pub evaluate_all_signals: bool,
    pub audit_path: Option<String>,
    /// Every adapter by the name clients use.
    pub adapters: HashMap<Arc<str>, Adapter>,
    pub placement: Placement,
    pub admin_key: Option<String>,
    /// Tenants and their keys; none: authentication is off.
    pub tenants: Tenants,
    pub experiments: Vec<Arc<Experiment>>,
    /// Where shared state lives: read when the router starts (a change needs a restart).
    pub store: StoreSpec,
    pub fleet: FleetSpec,
    /// SHA-256 of the canonical plan (Python computes it): equal on routers that agree.
    pub hash: String,
}

#[derive(Debug)]
pub struct BaseModel {
    pub name: Arc<str>,
    /// Names of the endpoints that serve it.
    pub endpoints: Vec<Arc<str>>,
    pub reasoning: Option<ReasoningSpec>,
    pub adapters: Vec<Arc<str>>,
}

#[derive(Debug, Clone)]
pub struct Adapter {
    pub name: Arc<str>,
    /// The name vLLM serves the current version as.
    pub served: Arc<str>,
    pub base: usize,
    pub path: Option<String>,
    pub min_replicas: usize,
    pub max_replicas: Option<usize>,
    pub max_concurrency: Option<usize>,
    /// Requests in flight to it through this router (live state).
    pub active: Arc<AtomicUsize>,
    /// The unfinished hash of its name, which each replica's name completes into its
    /// rendezvous rank (replicas/select.rs).
    pub rank_seed: u64,
}

pub type Placement = PlacementSpec;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    Base(usize),
    Adapter { base: usize, name: Arc<str> },
}

#[derive(Debug)]
pub struct Category {
    pub name: Arc<str>,
    pub system_prompt: Option<Arc<str>>,
    pub system_prompt_mode: SystemPromptMode,
    /// model_scores, highest score first (config order among equals).
    pub targets: Vec<Target>,
}

impl Category {
    pub fn best_score(&self) -> f64 {
        self.targets.first().map(|t| t.score).unwrap_or(0.0)
    }
}

/// A place a request can go: a base model, optionally with one of its adapters.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub base: usize,
    pub adapter: Option<Arc<str>>,
    pub score: f64,
    pub use_reasoning: Option<bool>,
    pub reasoning_effort: Arc<str>,
}

impl Target {
    /// The target for a model named outright: no score of its own, no reasoning setting.
    pub fn named(base: usize, adapter: Option<Arc<str>>) -> Target {
        Target { base, adapter, score: 1.0, use_reasoning: None, reasoning_effort: Arc::from("") }
    }
}

impl Plan {
    /// Compiles a spec against the router's live state; `externals` are the classifiers the
    /// spec's external signals name.
    pub fn compile(spec: PlanSpec, live: &LiveState, externals: &Externals) -> Result<Plan, PlanError> {
        if spec.version != PLAN_VERSION {
            return Err(PlanError::new(
                "version",
                format!("plan version {} is not supported (expected {PLAN_VERSION})", spec.version),
            ));
        }
        check_endpoints(&spec.endpoints)?;

        let mut bases = Vec::with_capacity(spec.models.len());
        let mut models = HashMap::new();
        let mut adapters = HashMap::new();
        for (bi, m) in spec.models.iter().enumerate() {
            let path = format!("models[{bi}]");
            let mut eps = Vec::new();
            for (ei, name) in m.endpoints.iter().enumerate() {
                if !spec.endpoints.iter().any(|e| e.name == *name) {
                    return Err(PlanError::new(
                        format!("{path}.endpoints[{ei}]"),
                        format!("unknown endpoint '{name}'"),
                    ));
                }
                eps.push(Arc::from(name.as_str()));
            }
            if models.insert(m.name.clone(), ModelRef::Base(bi)).is_some() {
                return Err(PlanError::new(format!("{path}.name"), format!("duplicate model name '{}'", m.name)));
            }
            let mut names = Vec::new();
            for (ai, a) in m.adapters.iter().enumerate() {
                let name: Arc<str> = Arc::from(a.name.as_str());
                if models.insert(a.name.clone(), ModelRef::Adapter { base: bi, name: name.clone() }).is_some() {
                    return Err(PlanError::new(
                        format!("{path}.adapters[{ai}].name"),
                        format!("duplicate model name '{}'", a.name),
                    ));
                }
                adapters.insert(
                    name.clone(),
                    Adapter {
                        name: name.clone(),
                        served: Arc::from(a.served_name.as_str()),
                        base: bi,
                        path: a.path.clone(),
                        min_replicas: a.min_replicas.max(1),
                        max_replicas: a.max_replicas,
                        max_concurrency: a.max_concurrency,
                        rank_seed: hash::partial(&[a.name.as_bytes()]),
                        active: live.adapter_inflight(&name),
                    },
                );
                names.push(name);
            }
            bases.push(BaseModel {
                name: Arc::from(m.name.as_str()),
                endpoints: eps,
                reasoning: m.reasoning.clone(),
                adapters: names,
            });
        }

        let mut categories = Vec::with_capacity(spec.categories.len());
        let mut category_index = HashMap::new();
        for (ci, c) in spec.categories.iter().enumerate() {
            let path = format!("categories[{ci}]");
            if category_index.insert(c.name.clone(), ci).is_some() {
                return Err(PlanError::new(format!("{path}.name"), format!("duplicate category '{}'", c.name)));
            }
            let mut targets = Vec::with_capacity(c.targets.len());
            for (ti, t) in c.targets.iter().enumerate() {
                let tpath = format!("{path}.targets[{ti}]");
                targets.push(resolve_target(t, &models, &bases, &tpath)?);
            }
            if targets.is_empty() {
                return Err(PlanError::new(format!("{path}.targets"), "a category needs at least one target"));
            }
            // Stable sort: equal scores keep config order.
            targets.sort_by(|a, b| b.score.total_cmp(&a.score));
            categories.push(Category {
                name: Arc::from(c.name.as_str()),
                system_prompt: c.system_prompt.as_deref().map(Arc::from),
                system_prompt_mode: c.system_prompt_mode,
                targets,
            });
        }
        let default_category = *category_index.get(&spec.default_category).ok_or_else(|| {
            PlanError::new("default_category", format!("unknown category '{}'", spec.default_category))
        })?;

        let mut signals = Vec::with_capacity(spec.signals.len());
        for (si, s) in spec.signals.iter().enumerate() {
            signals.push(Signal::build(s, &category_index, externals, &format!("signals[{si}]"))?);
        }

        let tenants = Tenants::compile(&spec.tenants, &models)?;
        let mut experiments = Vec::with_capacity(spec.experiments.len());
        for (ei, e) in spec.experiments.iter().enumerate() {
            let path = format!("experiments[{ei}]");
            if experiments.iter().any(|x: &Arc<Experiment>| *x.name == *e.name) {
                return Err(PlanError::new(format!("{path}.name"), format!("duplicate experiment '{}'", e.name)));
            }
            let handle = live.experiments.get(&e.name);
            experiments.push(Arc::new(Experiment::compile(e, &path, &adapters, &category_index, handle)?));
        }

        Ok(Plan {
            server: spec.server,
            endpoints: spec.endpoints,
            bases,
            models,
            categories,
            category_index,
            default_category,
            signals,
            virtual_models: spec.routing.virtual_models.iter().map(|m| m.to_lowercase()).collect(),
            router_model_name: spec.routing.router_model_name,
            classify_messages: spec.routing.classify_messages,
            evaluate_all_signals: spec.routing.evaluate_all_signals,
            audit_path: spec.audit.path,
            adapters,
            placement: spec.placement,
            admin_key: spec.admin_key,
            tenants,
            experiments,
            store: spec.store,
            fleet: spec.fleet,
            hash: spec.hash,
        })
    }

    pub fn from_json(json: &str, live: &LiveState) -> Result<Plan, PlanError> {
        Plan::from_json_with(json, live, &Externals::new())
    }

    pub fn from_json_with(json: &str, live: &LiveState, externals: &Externals) -> Result<Plan, PlanError> {
        let spec: PlanSpec = serde_json::from_str(json).map_err(|e| PlanError::new("plan", e.to_string()))?;
        Plan::compile(spec, live, externals)
    }

    /// The name sent upstream as `model` for a target: the adapter's served (versioned) name.
    pub fn upstream_model<'a>(&'a self, target: &'a Target) -> &'a str {
        match &target.adapter {
            Some(a) => self.adapters.get(a).map(|x| &*x.served).unwrap_or(a),
            None => &self.bases[target.base].name,
        }
    }

    pub fn is_virtual_model(&self, model: &str) -> bool {
        self.virtual_models.iter().any(|v| v.eq_ignore_ascii_case(model))
    }

    pub fn category_name(&self, idx: usize) -> &str {
        &self.categories[idx].name
    }
}

fn check_endpoints(specs: &[EndpointSpec]) -> Result<(), PlanError> {
    let mut seen = HashMap::new();
    for (i, e) in specs.iter().enumerate() {
        let path = format!("endpoints[{i}]");
        if seen.insert(e.name.as_str(), i).is_some() {
            return Err(PlanError::new(format!("{path}.name"), format!("duplicate endpoint '{}'", e.name)));
        }
        if !(e.weight.is_finite() && e.weight > 0.0) {
            return Err(PlanError::new(format!("{path}.weight"), "weight must be a positive number"));
        }
    }
    Ok(())
}

fn resolve_target(
    t: &TargetSpec,
    models: &HashMap<String, ModelRef>,
    bases: &[BaseModel],
    path: &str,
) -> Result<Target, PlanError> {
    let base = match models.get(&t.model) {
        Some(ModelRef::Base(b)) => *b,
        _ => return Err(PlanError::new(format!("{path}.model"), format!("'{}' is not a base model", t.model))),
    };
    let adapter = match &t.adapter {
        None => None,
        Some(a) => match bases[base].adapters.iter().find(|x| x.as_ref() == a) {
            Some(found) => Some(found.clone()),
            None => {
                return Err(PlanError::new(
                    format!("{path}.adapter"),
                    format!("adapter '{a}' is not declared on base model '{}'", t.model),
                ))
            }
        },
    };
    if !(0.0..=1.0).contains(&t.score) {
        return Err(PlanError::new(format!("{path}.score"), "score must lie in 0..1"));
    }
    Ok(Target {
        base,
        adapter,
        score: t.score,
        use_reasoning: t.use_reasoning,
        reasoning_effort: Arc::from(t.reasoning_effort.as_str()),
    })
}

#[cfg(test)]
pub mod testing {
    //! A small plan for unit tests across modules.

    use super::*;
    use serde_json::json;

    pub fn spec_json() -> serde_json::Value {
        json!({
            "version": 1,
            "server": {"max_body_bytes": 1048576, "connect_timeout_ms": 1000, "request_timeout_ms": 5000,
                       "stream_idle_timeout_ms": 5000, "health_interval_ms": 1000, "health_timeout_ms": 500,
                       "drain_timeout_ms": 1000, "retry_connect_errors": true},
            "endpoints": [{"name": "e1", "host": "127.0.0.1", "port": 9, "weight": 1.0, "api_key": null, "max_loras": 2,
                           "discovery": {"type": "static"}}],
            "models": [{"name": "base", "endpoints": ["e1"],
                        "reasoning": {"type": "chat_template_kwargs", "parameter": "enable_thinking"},
                        "adapters": [
                            {"name": "tech-lora", "served_name": "tech-lora", "path": "/adapters/tech-lora",
                             "min_replicas": 1, "max_replicas": null, "max_concurrency": null},
                            {"name": "legal-lora", "served_name": "legal-lora", "path": null,
                             "min_replicas": 1, "max_replicas": null, "max_concurrency": null}]}],
            "categories": [
                {"name": "technical", "system_prompt": "You are an engineer.", "system_prompt_mode": "replace",
                 "targets": [{"model": "base", "adapter": "tech-lora", "score": 1.0, "use_reasoning": true, "reasoning_effort": "medium"}]},
                {"name": "legal", "system_prompt": null, "system_prompt_mode": "insert",
                 "targets": [{"model": "base", "adapter": "legal-lora", "score": 0.9, "use_reasoning": null, "reasoning_effort": "medium"}]},
                {"name": "general", "system_prompt": null, "system_prompt_mode": "replace",
                 "targets": [{"model": "base", "adapter": null, "score": 0.5, "use_reasoning": false, "reasoning_effort": "medium"}]}
            ],
            "default_category": "general",
            "signals": [{"type": "keyword", "rules": [
                {"category": "technical", "operator": "OR", "keywords": ["python", "rust"], "case_sensitive": false, "whole_word": true},
                {"category": "legal", "operator": "OR", "keywords": ["contract", "合同"], "case_sensitive": false, "whole_word": true}
            ]}],
            "routing": {"virtual_models": ["MoM", "auto"], "router_model_name": "MoM", "classify_messages": "last_user",
                        "evaluate_all_signals": false},
            "placement": {"policy": "lora-aware", "spill_threshold": 8, "load_timeout_ms": 1000},
            "audit": {"path": null},
            "admin_key": null,
            "tenants": [],
            "experiments": [],
            "store": {"redis": null, "prefix": "lora-router"},
            "fleet": {"nameservers": []},
            "hash": "test"
        })
    }

    /// A plan and the live state it compiled against, with the plan's replicas as members.
    pub fn compiled(spec: &serde_json::Value) -> (Arc<LiveState>, Plan) {
        let live = LiveState::local();
        let plan = Plan::from_json(&spec.to_string(), &live).expect("test plan compiles");
        crate::replicas::discovery::apply_plan(&plan, &live).expect("members");
        (live, plan)
    }

    pub fn plan() -> Plan {
        compiled(&spec_json()).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_and_indexes_models() {
        let plan = testing::plan();
        assert_eq!(plan.models.get("base"), Some(&ModelRef::Base(0)));
        assert!(matches!(plan.models.get("tech-lora"), Some(ModelRef::Adapter { base: 0, .. })));
        assert_eq!(plan.category_name(plan.default_category), "general");
        assert!(plan.is_virtual_model("mom"));
        assert!(plan.is_virtual_model("AUTO"));
    }

    #[test]
    fn dangling_adapter_is_a_plan_error_with_path() {
        let mut spec = testing::spec_json();
        spec["categories"][0]["targets"][0]["adapter"] = "missing".into();
        let err = Plan::from_json(&spec.to_string(), &LiveState::local()).err().unwrap();
        assert_eq!(err.path, "categories[0].targets[0].adapter");
    }

    #[test]
    fn unknown_field_is_rejected() {
        let mut spec = testing::spec_json();
        spec["surprise"] = 1.into();
        assert!(Plan::from_json(&spec.to_string(), &LiveState::local()).is_err());
    }

    #[test]
    fn live_state_outlives_a_reload() {
        let (live, first) = testing::compiled(&testing::spec_json());
        first.adapters["tech-lora"].active.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let second = Plan::from_json(&testing::spec_json().to_string(), &live).unwrap();
        assert!(Arc::ptr_eq(&first.adapters["tech-lora"].active, &second.adapters["tech-lora"].active));
    }
}
