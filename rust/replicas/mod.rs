//! The vLLM replicas behind the router: their addresses, health, load and adapters. A
//! `Replica` is shared between plans (reloads keep its state); `select` picks one for a
//! request; `sync` keeps each replica's state in step with the replica itself; `vllm` speaks
//! vLLM's adapter API; `lora` models each replica's adapters; `ondemand` loads an adapter
//! where a request needs it; `demand` tracks how much each adapter is asked for.

pub mod demand;
pub mod health;
pub mod lora;
pub mod ondemand;
pub mod select;
pub mod sync;
pub mod vllm;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use http::HeaderValue;

use crate::plan::EndpointSpec;

#[derive(Debug)]
pub struct Replica {
    pub name: Arc<str>,
    pub host: String,
    pub port: u16,
    /// `host:port`, for the upstream URI.
    pub authority: String,
    pub api_key: Option<HeaderValue>,
    weight_bits: AtomicU64,
    healthy: AtomicBool,
    inflight: AtomicUsize,
    pub lora: lora::LoraState,
}

impl Replica {
    pub fn new(spec: &EndpointSpec) -> Result<Replica, String> {
        let authority = if spec.host.contains(':') && !spec.host.starts_with('[') {
            format!("[{}]:{}", spec.host, spec.port)
        } else {
            format!("{}:{}", spec.host, spec.port)
        };
        if authority.parse::<http::uri::Authority>().is_err() {
            return Err(format!("'{authority}' is not a valid host:port"));
        }
        let api_key = match &spec.api_key {
            Some(k) => Some(
                HeaderValue::from_str(&format!("Bearer {k}"))
                    .map_err(|_| "api_key has invalid characters".to_string())?,
            ),
            None => None,
        };
        Ok(Replica {
            name: Arc::from(spec.name.as_str()),
            host: spec.host.clone(),
            port: spec.port,
            authority,
            api_key,
            weight_bits: AtomicU64::new(spec.weight.to_bits()),
            healthy: AtomicBool::new(true),
            inflight: AtomicUsize::new(0),
            lora: lora::LoraState::new(spec.max_loras),
        })
    }

    pub fn same_address(&self, spec: &EndpointSpec) -> bool {
        *self.name == *spec.name && self.host == spec.host && self.port == spec.port
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
}

/// Every endpoint of a plan as the router sees it, for `/admin/replicas` and the registry.
pub fn snapshot(endpoints: &[Arc<Replica>]) -> serde_json::Value {
    endpoints
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r.lora.snapshot()).unwrap_or_default();
            v["name"] = serde_json::json!(&*r.name);
            v["address"] = serde_json::json!(r.authority);
            v["healthy"] = serde_json::json!(r.is_healthy());
            v["requests_in_flight"] = serde_json::json!(r.inflight());
            v
        })
        .collect()
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
