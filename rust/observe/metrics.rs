//! Prometheus metrics. Label values come from the plan (categories, models, endpoints), so
//! cardinality is bounded by configuration, never by client input.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::plan::Plan;
use crate::state::LiveState;
pub use crate::util::histogram::{Histogram, HistogramCounts, LATENCY_BOUNDS};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestKey {
    pub path: &'static str,
    pub classifier: Arc<str>,
    pub category: Arc<str>,
    pub model: Arc<str>,
    pub backend: Arc<str>,
    pub status: u16,
}

const ROUTING_BOUNDS: &[f64] =
    &[0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

pub struct Metrics {
    requests: Mutex<HashMap<RequestKey, u64>>,
    errors: Mutex<HashMap<&'static str, u64>>,
    signal_errors: Mutex<HashMap<Arc<str>, u64>>,
    pub truncated_inputs: AtomicU64,
    pub routing: Histogram,
    pub duration: Histogram,
    pub first_byte: Histogram,
    pub client_disconnects: AtomicU64,
    pub retries: AtomicU64,
    /// Quota checks and token charges that could not use the shared counters.
    pub quota_backend_errors: Arc<AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::new(HashMap::new()),
            errors: Mutex::new(HashMap::new()),
            signal_errors: Mutex::new(HashMap::new()),
            truncated_inputs: AtomicU64::new(0),
            routing: Histogram::new(ROUTING_BOUNDS),
            duration: Histogram::new(LATENCY_BOUNDS),
            first_byte: Histogram::new(LATENCY_BOUNDS),
            client_disconnects: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            quota_backend_errors: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Metrics {
    pub fn count_request(&self, key: RequestKey) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry(key).or_insert(0) += 1;
        }
    }

    pub fn count_error(&self, kind: &'static str) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(kind).or_insert(0) += 1;
        }
    }

    /// Counts what the signals of one decision ran into: failures (each signal abstained
    /// and the request still routed) and truncated inputs.
    pub fn count_signals(&self, decision: &crate::decision::Decision) {
        for s in &decision.signals {
            if let crate::signals::Evidence::Error(_) = s.evidence {
                if let Ok(mut m) = self.signal_errors.lock() {
                    *m.entry(s.signal.clone()).or_insert(0) += 1;
                }
            }
        }
        if decision.truncated() {
            self.truncated_inputs.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, plan: &Plan, live: &LiveState) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP lora_router_requests_total Requests answered, by decision and status.\n");
        out.push_str("# TYPE lora_router_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            let mut rows: Vec<_> = m.iter().collect();
            rows.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
            for (k, v) in rows {
                let _ = writeln!(
                    out,
                    "lora_router_requests_total{{path=\"{}\",classifier=\"{}\",category=\"{}\",model=\"{}\",backend=\"{}\",status=\"{}\"}} {v}",
                    k.path,
                    esc(&k.classifier),
                    esc(&k.category),
                    esc(&k.model),
                    esc(&k.backend),
                    k.status
                );
            }
        }
        out.push_str("# HELP lora_router_errors_total Errors the router answered itself, by kind.\n");
        out.push_str("# TYPE lora_router_errors_total counter\n");
        if let Ok(m) = self.errors.lock() {
            let mut rows: Vec<_> = m.iter().collect();
            rows.sort();
            for (k, v) in rows {
                let _ = writeln!(out, "lora_router_errors_total{{kind=\"{k}\"}} {v}");
            }
        }
        out.push_str(
            "# HELP lora_router_signal_errors_total Signal failures (the signal abstained; the request routed on).\n",
        );
        out.push_str("# TYPE lora_router_signal_errors_total counter\n");
        if let Ok(m) = self.signal_errors.lock() {
            let mut rows: Vec<_> = m.iter().collect();
            rows.sort();
            for (k, v) in rows {
                let _ = writeln!(out, "lora_router_signal_errors_total{{signal=\"{}\"}} {v}", esc(k));
            }
        }
        out.push_str(
            "# HELP lora_router_truncated_inputs_total Requests whose classified text exceeded the token budget.\n",
        );
        out.push_str("# TYPE lora_router_truncated_inputs_total counter\n");
        let _ = writeln!(out, "lora_router_truncated_inputs_total {}", self.truncated_inputs.load(Ordering::Relaxed));
        self.routing.render(&mut out, "lora_router_routing_seconds", "Time spent deciding where a request goes.");
        self.first_byte.render(
            &mut out,
            "lora_router_upstream_first_byte_seconds",
            "Time until upstream response headers.",
        );
        self.duration.render(&mut out, "lora_router_request_duration_seconds", "Time until the response body ended.");
        let _ = writeln!(
            out,
            "# HELP lora_router_client_disconnects_total Responses cut short by the client.\n# TYPE lora_router_client_disconnects_total counter\nlora_router_client_disconnects_total {}",
            self.client_disconnects.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP lora_router_retries_total Requests retried on another endpoint after a connect error.\n# TYPE lora_router_retries_total counter\nlora_router_retries_total {}",
            self.retries.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP lora_router_quota_backend_errors_total Quota checks and token charges the shared counters failed (each request then followed quotas.on_backend_error).\n# TYPE lora_router_quota_backend_errors_total counter\nlora_router_quota_backend_errors_total {}",
            self.quota_backend_errors.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP lora_router_experiment_requests_total Requests served by each experiment arm (shadow: copies).\n",
        );
        out.push_str("# TYPE lora_router_experiment_requests_total counter\n");
        for e in &plan.experiments {
            let shadow = e.shadow.iter().map(|s| (&s.adapter, &s.stats, "shadow"));
            for (adapter, stats, role) in e.arms.iter().map(|a| (&a.adapter, &a.stats, "arm")).chain(shadow) {
                let _ = writeln!(
                    out,
                    "lora_router_experiment_requests_total{{experiment=\"{}\",adapter=\"{}\",role=\"{role}\"}} {}",
                    esc(&e.name),
                    esc(adapter),
                    stats.requests.load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP lora_router_config_info The plan this router runs: SHA-256 of its canonical form (equal across routers that agree).\n# TYPE lora_router_config_info gauge\nlora_router_config_info{{hash=\"{}\"}} 1",
            esc(&plan.hash)
        );
        let _ = writeln!(
            out,
            "# HELP lora_router_store_up Whether the shared state store answers.\n# TYPE lora_router_store_up gauge\nlora_router_store_up{{backend=\"{}\"}} {}",
            live.store.backend(),
            u8::from(live.store.reachable())
        );
        let replicas = live.replicas.snapshot();
        out.push_str("# HELP lora_router_backend_healthy Whether the router sends traffic to the endpoint.\n");
        out.push_str("# TYPE lora_router_backend_healthy gauge\n");
        for r in &replicas.list {
            let _ = writeln!(
                out,
                "lora_router_backend_healthy{{backend=\"{}\"}} {}",
                esc(&r.name),
                u8::from(r.is_healthy())
            );
        }
        out.push_str("# HELP lora_router_backend_inflight Requests the router has in flight to the endpoint.\n");
        out.push_str("# TYPE lora_router_backend_inflight gauge\n");
        for r in &replicas.list {
            let _ = writeln!(out, "lora_router_backend_inflight{{backend=\"{}\"}} {}", esc(&r.name), r.inflight());
        }
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
