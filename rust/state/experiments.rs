//! What changes while an A/B test runs: the arms' weights set at run time, and each arm's
//! statistics. The compiled experiment (tenants/experiments.rs) holds the config's weights
//! and a handle to this; statistics survive reloads for the same experiment and adapter.
//!
//! Statistics are counted here, in the process, and their increments are added to the store
//! every second (`state/mod.rs`), so that with Redis `GET /admin/experiments` on any router
//! shows the fleet's totals.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use serde_json::{json, Value};

use crate::util::histogram::{Histogram, HistogramCounts, LATENCY_BOUNDS};

pub struct ArmStats {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    pub first_byte: Histogram,
    pub total: Histogram,
}

impl Default for ArmStats {
    fn default() -> Self {
        ArmStats {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            prompt_tokens: AtomicU64::new(0),
            completion_tokens: AtomicU64::new(0),
            first_byte: Histogram::new(LATENCY_BOUNDS),
            total: Histogram::new(LATENCY_BOUNDS),
        }
    }
}

impl ArmStats {
    /// One finished request: its status, latencies and the tokens its usage block reported.
    pub fn record(&self, status: u16, first_byte_s: Option<f64>, total_s: f64, usage: Option<(u64, u64)>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !(200..300).contains(&status) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(s) = first_byte_s {
            self.first_byte.observe_seconds(s);
        }
        self.total.observe_seconds(total_s);
        if let Some((p, c)) = usage {
            self.prompt_tokens.fetch_add(p, Ordering::Relaxed);
            self.completion_tokens.fetch_add(c, Ordering::Relaxed);
        }
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        c.put("requests", self.requests.load(Ordering::Relaxed));
        c.put("errors", self.errors.load(Ordering::Relaxed));
        c.put("prompt_tokens", self.prompt_tokens.load(Ordering::Relaxed));
        c.put("completion_tokens", self.completion_tokens.load(Ordering::Relaxed));
        c.put_histogram("first_byte", &self.first_byte.counts());
        c.put_histogram("total", &self.total.counts());
        c
    }
}

/// An arm's statistics as plain counters (`requests`, `first_byte.b3`, ...): what the store
/// adds up across routers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    fn put(&mut self, field: &str, v: u64) {
        self.0.insert(field.to_string(), v);
    }

    fn put_histogram(&mut self, name: &str, h: &HistogramCounts) {
        for (i, b) in h.buckets.iter().enumerate() {
            self.put(&format!("{name}.b{i}"), *b);
        }
        self.put(&format!("{name}.sum_us"), h.sum_micros);
        self.put(&format!("{name}.count"), h.count);
    }

    fn get(&self, field: &str) -> u64 {
        self.0.get(field).copied().unwrap_or(0)
    }

    fn histogram(&self, name: &str) -> HistogramCounts {
        HistogramCounts {
            buckets: (0..LATENCY_BOUNDS.len()).map(|i| self.get(&format!("{name}.b{i}"))).collect(),
            sum_micros: self.get(&format!("{name}.sum_us")),
            count: self.get(&format!("{name}.count")),
        }
    }

    /// What grew since `before`.
    pub fn since(&self, before: &Counts) -> Counts {
        Counts(
            self.0.iter().map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k)))).filter(|(_, v)| *v > 0).collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(|v| *v == 0)
    }

    pub fn add(&mut self, other: &Counts) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_insert(0) += v;
        }
    }

    pub fn to_json(&self) -> Value {
        let ms = |s: f64| (s * 1e6).round() / 1e3;
        let timing = |name: &str| {
            let h = self.histogram(name);
            json!({"mean": h.mean_seconds().map(ms), "p50_bucket": h.quantile(LATENCY_BOUNDS, 0.5).map(ms),
                   "p99_bucket": h.quantile(LATENCY_BOUNDS, 0.99).map(ms)})
        };
        json!({
            "requests": self.get("requests"),
            "errors": self.get("errors"),
            "prompt_tokens": self.get("prompt_tokens"),
            "completion_tokens": self.get("completion_tokens"),
            "first_byte_ms": timing("first_byte"),
            "total_ms": timing("total"),
        })
    }
}

/// Weights an operator set at run time, by arm adapter, and the config's weights they
/// replaced: a plan whose config weights differ (the config was edited since) ignores them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WeightOverride {
    pub weights: Vec<(String, f64)>,
    pub config: Vec<(String, f64)>,
}

/// Where a stats counter belongs: an arm, or the shadow candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Arm,
    Shadow,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Arm => "arm",
            Role::Shadow => "shadow",
        }
    }
}

type ArmKey = (Role, Arc<str>);

#[derive(Default)]
pub struct ExperimentLive {
    pub weights: ArcSwapOption<WeightOverride>,
    stats: Mutex<BTreeMap<ArmKey, Arc<ArmStats>>>,
    /// What of each arm's counts the store has been sent.
    flushed: Mutex<BTreeMap<ArmKey, Counts>>,
}

impl ExperimentLive {
    /// The statistics of one arm (created on first use; kept across reloads).
    pub fn stats(&self, role: Role, adapter: &Arc<str>) -> Arc<ArmStats> {
        let mut m = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        m.entry((role, adapter.clone())).or_default().clone()
    }

    /// Each arm's counts not yet sent to the store, marked as sent.
    pub fn take_unflushed(&self) -> Vec<(Role, Arc<str>, Counts)> {
        let arms: Vec<(ArmKey, Arc<ArmStats>)> =
            self.stats.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut flushed = self.flushed.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (key, stats) in arms {
            let now = stats.counts();
            let delta = now.since(flushed.get(&key).unwrap_or(&Counts::default()));
            if !delta.is_empty() {
                out.push((key.0, key.1.clone(), delta));
            }
            flushed.insert(key, now);
        }
        out
    }

    /// Gives counts back as unsent (the store did not take them).
    pub fn restore_unflushed(&self, role: Role, adapter: &Arc<str>, delta: &Counts) {
        let mut flushed = self.flushed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = flushed.get_mut(&(role, adapter.clone())) {
            for (k, v) in &delta.0 {
                if let Some(x) = c.0.get_mut(k) {
                    *x = x.saturating_sub(*v);
                }
            }
        }
    }
}

/// Experiments' live parts by name.
#[derive(Default)]
pub struct Experiments {
    by_name: Mutex<BTreeMap<Arc<str>, Arc<ExperimentLive>>>,
}

impl Experiments {
    pub fn get(&self, name: &str) -> Arc<ExperimentLive> {
        let mut m = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = m.get(name) {
            return e.clone();
        }
        let e = Arc::new(ExperimentLive::default());
        m.insert(Arc::from(name), e.clone());
        e
    }

    pub fn all(&self) -> Vec<(Arc<str>, Arc<ExperimentLive>)> {
        self.by_name.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_are_sent_once() {
        let live = ExperimentLive::default();
        let a: Arc<str> = Arc::from("v1");
        let s = live.stats(Role::Arm, &a);
        s.record(200, Some(0.02), 0.1, Some((3, 4)));
        s.record(500, None, 0.2, None);
        let sent = live.take_unflushed();
        assert_eq!(sent.len(), 1);
        let c = &sent[0].2;
        assert_eq!((c.get("requests"), c.get("errors"), c.get("completion_tokens")), (2, 1, 4));
        assert!(live.take_unflushed().is_empty());
        s.record(200, None, 0.1, None);
        let again = live.take_unflushed();
        assert_eq!(again[0].2.get("requests"), 1);
        live.restore_unflushed(Role::Arm, &a, &again[0].2);
        assert_eq!(live.take_unflushed()[0].2.get("requests"), 1);
        let mut total = c.clone();
        total.add(&again[0].2);
        let j = total.to_json();
        assert_eq!(j["requests"], 3);
        assert_eq!(j["total_ms"]["p50_bucket"], 100.0);
    }
}
