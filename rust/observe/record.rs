//! The per-request record and its completion. The handler fills a `RequestRecord` as the
//! request moves along; a `Completion` owns it from the moment a response exists and records
//! it exactly once, when dropped.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use serde_json::{json, Value};

use super::log::{SignalWarnings, Warning};
use super::metrics::RequestKey;
use super::{AuditLog, Metrics};
use crate::decision::Decision;
use crate::plan::Plan;
use crate::replicas::InflightGuard;
use crate::state::quotas::Permit;
use crate::state::LiveState;
use crate::tenants::Caller;
use crate::util::time::rfc3339;

pub struct Observer {
    pub metrics: Metrics,
    warnings: SignalWarnings,
    audit: ArcSwapOption<AuditLog>,
    /// Where finished responses' tokens are charged.
    live: Arc<LiveState>,
}

impl Observer {
    pub fn new(audit_path: Option<&str>, live: Arc<LiveState>) -> std::io::Result<Observer> {
        let o = Observer {
            metrics: Metrics::default(),
            warnings: SignalWarnings::default(),
            audit: ArcSwapOption::empty(),
            live,
        };
        o.set_audit_path(audit_path)?;
        Ok(o)
    }

    /// Opens the audit log at `path` (or closes it), unless it is already open there.
    pub fn set_audit_path(&self, path: Option<&str>) -> std::io::Result<()> {
        let current = self.audit.load_full();
        if current.as_deref().map(AuditLog::path) == path {
            return Ok(());
        }
        let next = match path {
            Some(p) => Some(Arc::new(AuditLog::open(p)?)),
            None => None,
        };
        if let Some(old) = self.audit.swap(next) {
            old.close();
        }
        Ok(())
    }

    pub fn close(&self) {
        if let Some(old) = self.audit.swap(None) {
            old.close();
        }
    }

    /// Counts and logs what the signals of a decision ran into: failures (each failed signal
    /// abstained; the request routed on) and suggestions the router could not honour.
    pub fn signals(&self, decision: &Decision) {
        self.metrics.count_signals(decision);
        for s in &decision.signals {
            if let crate::signals::Evidence::Error(e) = &s.evidence {
                self.warnings.warn(
                    &s.signal,
                    Warning::Failed,
                    &format!("signal {} failed, it abstained: {e}", s.signal),
                );
            }
        }
        if let crate::decision::Classifier::Signal(signal) = &decision.classifier {
            for h in decision.hints.iter().filter(|h| h.ignored) {
                self.warnings.warn(signal, Warning::IgnoredHint, &format!("{signal} suggested {}", h.text));
            }
        }
    }

    /// Counts and logs a failure of the shared quota counters (`why` says what the request
    /// got instead: admitted unchecked, checked in the process, or refused).
    pub fn quota_backend_failed(&self, why: &str) {
        self.metrics.quota_backend_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.warnings.warn(&Arc::from("quotas"), Warning::Failed, &format!("quota counters failed: {why}"));
    }

    /// Charges a finished response's tokens to its tenant, off the response's path.
    fn charge_tokens(&self, tenant: Arc<str>, tokens: u64) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (live, errors) = (self.live.clone(), self.metrics.quota_backend_errors.clone());
        rt.spawn(async move {
            if let Err(e) = live.store.charge(&tenant, tokens).await {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                crate::observe::log::warn(&format!("could not charge {tokens} tokens to tenant '{tenant}': {e}"));
            }
        });
    }

    pub fn audit_enabled(&self) -> bool {
        self.audit.load().is_some()
    }

    pub fn finish(&self, r: &RequestRecord, outcome: &Outcome) {
        let latency = r.started.elapsed();
        let (category, model, classifier) = match (&r.plan, &r.decision) {
            (Some(plan), Some(d)) => (
                d.category.map(|c| plan.categories[c].name.clone()).unwrap_or_else(|| Arc::from("")),
                Arc::from(plan.upstream_model(&d.target)),
                Arc::from(d.classifier.name()),
            ),
            _ => (Arc::from(""), Arc::from(""), Arc::from("")),
        };
        let m = &self.metrics;
        m.count_request(RequestKey {
            path: r.path,
            classifier,
            category,
            model,
            backend: r.backend.clone().unwrap_or_else(|| Arc::from("")),
            status: r.status,
        });
        if let Some(kind) = r.error {
            m.count_error(kind);
        }
        if matches!(outcome, Outcome::ClientDisconnected) {
            m.client_disconnects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        m.duration.observe_seconds(latency.as_secs_f64());
        if let Some(d) = &r.decision {
            if let Some(a) = &d.experiment {
                let first_byte = r.first_byte_us.map(|u| u as f64 / 1e6);
                a.stats().record(r.status, first_byte, latency.as_secs_f64(), r.usage);
            }
        }
        if let (Some(caller), Some((p, c))) = (&r.caller, r.usage) {
            if caller.tenant.limits.tpm.is_some() && p + c > 0 {
                self.charge_tokens(caller.tenant.name.clone(), p + c);
            }
        }
        if let Some(audit) = self.audit.load().as_ref() {
            audit.write(r.to_json(outcome, latency.as_secs_f64() * 1e3).to_string());
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    ClientDisconnected,
    UpstreamError(String),
}

impl Outcome {
    fn name(&self) -> &str {
        match self {
            Outcome::Completed => "completed",
            Outcome::ClientDisconnected => "client_disconnected",
            Outcome::UpstreamError(_) => "upstream_error",
        }
    }
}

pub struct RequestRecord {
    pub request_id: Arc<str>,
    pub wall: SystemTime,
    pub started: Instant,
    pub path: &'static str,
    pub stream: bool,
    pub plan: Option<Arc<Plan>>,
    pub decision: Option<Decision>,
    pub backend: Option<Arc<str>>,
    pub status: u16,
    pub routing_us: u64,
    pub first_byte_us: Option<u64>,
    pub attempts: u32,
    /// The chosen replica had to load the adapter first (an on-demand load).
    pub loaded_adapter: bool,
    pub error: Option<&'static str>,
    /// Who called (with tenants configured).
    pub caller: Option<Caller>,
    /// The place under the adapter's concurrency cap, given back with the record.
    pub permit: Option<Permit>,
    /// (prompt, completion) tokens from the response's usage, when it was read.
    pub usage: Option<(u64, u64)>,
    /// A copy went to the experiment's shadow candidate.
    pub shadowed: bool,
}

impl RequestRecord {
    pub fn new(request_id: Arc<str>, path: &'static str) -> Self {
        RequestRecord {
            request_id,
            wall: SystemTime::now(),
            started: Instant::now(),
            path,
            stream: false,
            plan: None,
            decision: None,
            backend: None,
            status: 0,
            routing_us: 0,
            first_byte_us: None,
            attempts: 0,
            loaded_adapter: false,
            error: None,
            caller: None,
            permit: None,
            usage: None,
            shadowed: false,
        }
    }

    /// Whether the response's token usage is needed: for a tenant's token quota or an
    /// experiment arm's statistics.
    pub fn wants_usage(&self) -> bool {
        self.caller.as_ref().is_some_and(|c| c.tenant.limits.tpm.is_some())
            || self.decision.as_ref().is_some_and(|d| d.experiment.is_some())
    }

    pub fn to_json(&self, outcome: &Outcome, latency_ms: f64) -> Value {
        let since = self.wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut v = json!({
            "ts": rfc3339(since.as_secs(), since.subsec_micros()),
            "request_id": &*self.request_id,
            "path": self.path,
            "stream": self.stream,
            "status": self.status,
            "outcome": outcome.name(),
            "latency_ms": (latency_ms * 1000.0).round() / 1000.0,
            "first_byte_ms": self.first_byte_us.map(|u| u as f64 / 1000.0),
            "routing_us": self.routing_us,
            "attempts": self.attempts,
            "backend": self.backend.as_deref(),
            "loaded_adapter": self.loaded_adapter,
            "error": self.error,
            "tenant": self.caller.as_ref().map(|c| &*c.tenant.name),
            "key_id": self.caller.as_ref().map(|c| &*c.key_id),
            "usage": self.usage.map(|(p, c)| json!({"prompt_tokens": p, "completion_tokens": c})),
            "shadow": self.shadowed,
        });
        if let Outcome::UpstreamError(msg) = outcome {
            v["error_detail"] = Value::String(msg.clone());
        }
        if let (Some(plan), Some(d)) = (&self.plan, &self.decision) {
            if let (Value::Object(out), Value::Object(dj)) = (&mut v, d.to_json(plan)) {
                out.extend(dj);
            }
        }
        v
    }
}

/// Records its request once, when dropped. `outcome` starts as "client disconnected" and the
/// response body sets it to "completed" when it reaches its end.
pub struct Completion {
    observer: Arc<Observer>,
    pub record: RequestRecord,
    pub outcome: Outcome,
    _inflight: Option<InflightGuard>,
}

impl Completion {
    pub fn new(observer: Arc<Observer>, record: RequestRecord, inflight: Option<InflightGuard>) -> Self {
        Completion { observer, record, outcome: Outcome::ClientDisconnected, _inflight: inflight }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.observer.finish(&self.record, &self.outcome);
    }
}
