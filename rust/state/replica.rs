//! One vLLM replica as the router sees it: its address, whether it takes traffic, the
//! requests the router has in flight to it, and its adapters (`residency.rs`). A replica
//! outlives plans and membership changes: reloads and discovery keep the same `Replica` for
//! the same address, and requests in flight keep theirs even after it left.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::HeaderValue;

use super::residency::LoraState;

/// Where a replica is and how to talk to it: built from the plan's endpoints (static) or from
/// what discovery found (one per address).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaSpec {
    /// Unique in the fleet: the endpoint's name, or `<endpoint>/<ip>:<port>` for one that
    /// discovery found. Rendezvous placement hashes it, so every router agrees on homes.
    pub name: String,
    /// The endpoint (group) it belongs to: what base models' `endpoints` name.
    pub group: String,
    pub host: String,
    pub port: u16,
    pub weight: f64,
    /// Bearer key sent upstream.
    pub api_key: Option<String>,
    /// GPU LoRA slots (vLLM `--max-loras`) until its metrics say otherwise.
    pub max_loras: usize,
}

impl ReplicaSpec {
    /// `host:port`, bracketing an IPv6 host.
    pub fn authority(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug)]
pub struct Replica {
    pub name: Arc<str>,
    pub group: Arc<str>,
    pub host: String,
    pub port: u16,
    /// `host:port`, for the upstream URI.
    pub authority: String,
    api_key: ArcSwapOption<HeaderValue>,
    weight_bits: AtomicU64,
    healthy: AtomicBool,
    inflight: AtomicUsize,
    pub lora: LoraState,
}

impl Replica {
    /// A replica that starts healthy (a configured endpoint: its first probe follows at once)
    /// or not (a discovered one joins once a probe has passed).
    pub fn new(spec: &ReplicaSpec, healthy: bool) -> Result<Replica, String> {
        let authority = spec.authority();
        if authority.parse::<http::uri::Authority>().is_err() {
            return Err(format!("'{authority}' is not a valid host:port"));
        }
        let r = Replica {
            name: Arc::from(spec.name.as_str()),
            group: Arc::from(spec.group.as_str()),
            host: spec.host.clone(),
            port: spec.port,
            authority,
            api_key: ArcSwapOption::empty(),
            weight_bits: AtomicU64::new(spec.weight.to_bits()),
            healthy: AtomicBool::new(healthy),
            inflight: AtomicUsize::new(0),
            lora: LoraState::new(spec.max_loras),
        };
        r.update(spec)?;
        Ok(r)
    }

    /// Whether `spec` names this replica (the same name at the same address).
    pub fn is(&self, spec: &ReplicaSpec) -> bool {
        *self.name == *spec.name && self.host == spec.host && self.port == spec.port
    }

    /// Takes the settings of a spec that names this replica (a reload may change them).
    pub fn update(&self, spec: &ReplicaSpec) -> Result<(), String> {
        let key = match &spec.api_key {
            Some(k) => Some(Arc::new(
                HeaderValue::from_str(&format!("Bearer {k}"))
                    .map_err(|_| "api_key has invalid characters".to_string())?,
            )),
            None => None,
        };
        self.api_key.store(key);
        self.set_weight(spec.weight);
        self.lora.set_max_loras(spec.max_loras);
        Ok(())
    }

    /// The `Authorization` value sent upstream, if the endpoint has a key.
    pub fn api_key(&self) -> Option<HeaderValue> {
        self.api_key.load().as_deref().cloned()
    }

    pub fn weight(&self) -> f64 {
        f64::from_bits(self.weight_bits.load(Ordering::Relaxed))
    }

    pub fn set_weight(&self, w: f64) {
        self.weight_bits.store(w.to_bits(), Ordering::Relaxed);
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Ejects the replica until a health probe succeeds.
    pub fn mark_unhealthy(&self) {
        self.healthy.store(false, Ordering::Relaxed);
    }

    pub fn mark_healthy(&self) {
        self.healthy.store(true, Ordering::Relaxed);
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Counts a request (for `adapter`, by its served name) as in flight until the guard drops,
    /// when the response body ends; the adapter is touched in the slot model.
    pub fn begin(self: &Arc<Self>, adapter: Option<Arc<str>>) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        if let Some(a) = &adapter {
            self.lora.begin(a);
        }
        InflightGuard { replica: self.clone(), adapter }
    }

    /// The replica as `/admin/replicas` and the registry show it.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self.lora.snapshot()).unwrap_or_default();
        v["name"] = serde_json::json!(&*self.name);
        v["endpoint"] = serde_json::json!(&*self.group);
        v["address"] = serde_json::json!(self.authority);
        v["healthy"] = serde_json::json!(self.is_healthy());
        v["requests_in_flight"] = serde_json::json!(self.inflight());
        v
    }
}

#[derive(Debug)]
pub struct InflightGuard {
    replica: Arc<Replica>,
    adapter: Option<Arc<str>>,
}

impl InflightGuard {
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.replica.inflight.fetch_sub(1, Ordering::Relaxed);
        if let Some(a) = &self.adapter {
            self.replica.lora.end(a);
        }
    }
}
