//! What the router knows about one replica's adapters: which ones its API serves (from
//! `/v1/models` and the loads the router made), and a model of its GPU LoRA slots.
//!
//! vLLM (0.32) does not report residency, so the router models it: every request it sends
//! for an adapter touches that adapter in an LRU of `max_loras` slots, as vLLM's own LRU does;
//! an adapter with requests in flight cannot be evicted (vLLM defers a request for a new
//! adapter while every slot is busy). The replica's `/metrics` corrects the model: an adapter
//! it reports active is resident, whoever sent it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Whether a replica accepts `/v1/load_lora_adapter` (vLLM's VLLM_ALLOW_RUNTIME_LORA_UPDATING).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeUpdates {
    Unknown = 0,
    On = 1,
    /// The load route answered 404 `{"detail":"Not Found"}`: only static adapters.
    Off = 2,
}

/// Where a replica stands for one adapter, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SlotTier {
    /// In a GPU slot now: no load.
    Resident,
    /// A slot is free: one load, nothing evicted.
    FreeSlot,
    /// Slots are full; an idle adapter would be evicted.
    Evict,
    /// Every slot holds an adapter with requests in flight: vLLM would defer the request.
    MustWait,
}

#[derive(Debug, Default)]
pub struct LoraState {
    max_loras: AtomicUsize,
    runtime_updates: AtomicU8,
    /// Requests waiting on the replica, from its `vllm:num_requests_waiting`.
    waiting: AtomicU64,
    /// Bumped each time the replica restarts: adapters loaded at run time are gone and must
    /// be loaded again.
    epoch: AtomicU64,
    /// The replica's `process_start_time_seconds`, as f64 bits (0: not seen yet).
    started_bits: AtomicU64,
    /// Whether `registered` has been read from the replica at least once.
    synced: std::sync::atomic::AtomicBool,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Adapters the replica's API serves: served name -> path (`root` in `/v1/models`).
    registered: HashMap<Arc<str>, String>,
    /// The modelled GPU slots, at most `max_loras`.
    slots: Vec<Slot>,
    clock: u64,
    /// Requests in flight per served adapter name (also for adapters evicted from the model).
    inflight: HashMap<Arc<str>, usize>,
    /// Slot loads the model counted (a request for an adapter that was not resident).
    loads: u64,
    /// Adapters the replica's metrics last reported active (`vllm:lora_requests_info`), as a
    /// metrics-only scheduler sees them.
    reported_active: Vec<Arc<str>>,
    /// The timestamp of that report (the series' value): vLLM sets it on each engine step, so
    /// an idle replica keeps reporting its last step's adapters with the same timestamp.
    reported_at: Option<f64>,
    /// When a router of the fleet last sent each adapter here.
    last_sent: HashMap<Arc<str>, std::time::Instant>,
}

/// Adapters the router sent within this long are already in the model: a metrics report of
/// them (which lags by up to a sync interval) says nothing new.
const SENT_RECENTLY: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug)]
struct Slot {
    name: Arc<str>,
    last_used: u64,
}

/// A snapshot for `/admin/replicas` and the Python registry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoraSnapshot {
    pub max_loras: usize,
    pub runtime_updates: &'static str,
    pub synced: bool,
    pub waiting: u64,
    pub epoch: u64,
    pub registered: HashMap<String, String>,
    /// Modelled residency, most recently used first.
    pub resident: Vec<String>,
    pub inflight: HashMap<String, usize>,
    /// Adapters the replica's metrics last reported running (whoever sent them).
    pub reported_active: Vec<String>,
    pub modelled_loads: u64,
}

impl LoraState {
    pub fn new(max_loras: usize) -> LoraState {
        let s = LoraState::default();
        s.max_loras.store(max_loras.max(1), Ordering::Relaxed);
        s
    }

    pub fn max_loras(&self) -> usize {
        self.max_loras.load(Ordering::Relaxed)
    }

    pub fn set_max_loras(&self, n: usize) {
        self.max_loras.store(n.max(1), Ordering::Relaxed);
    }

    pub fn runtime_updates(&self) -> RuntimeUpdates {
        match self.runtime_updates.load(Ordering::Relaxed) {
            1 => RuntimeUpdates::On,
            2 => RuntimeUpdates::Off,
            _ => RuntimeUpdates::Unknown,
        }
    }

    pub fn set_runtime_updates(&self, r: RuntimeUpdates) {
        self.runtime_updates.store(r as u8, Ordering::Relaxed);
    }

    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }

    pub fn set_waiting(&self, n: u64) {
        self.waiting.store(n, Ordering::Relaxed);
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Records the replica's start time; a different one than before means it restarted.
    pub fn observe_start(&self, started: f64) {
        let previous = self.started_bits.swap(started.to_bits(), Ordering::Relaxed);
        if previous != 0 && previous != started.to_bits() {
            self.restarted();
        }
    }

    /// The replica restarted: what it had loaded at run time and held in its slots is gone.
    pub fn restarted(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
        // It may come back configured otherwise.
        self.set_runtime_updates(RuntimeUpdates::Unknown);
        if let Ok(mut s) = self.inner.lock() {
            s.slots.clear();
        }
    }

    pub fn is_registered(&self, served: &str) -> bool {
        self.inner.lock().map(|s| s.registered.contains_key(served)).unwrap_or(false)
    }

    pub fn registered_path(&self, served: &str) -> Option<String> {
        self.inner.lock().ok()?.registered.get(served).cloned()
    }

    /// Replaces the registered set with what `/v1/models` listed.
    pub fn set_registered(&self, adapters: HashMap<Arc<str>, String>) {
        if let Ok(mut s) = self.inner.lock() {
            s.registered = adapters;
        }
        self.synced.store(true, Ordering::Relaxed);
    }

    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    pub fn add_registered(&self, served: Arc<str>, path: String) {
        if let Ok(mut s) = self.inner.lock() {
            s.registered.insert(served, path);
        }
    }

    pub fn remove_registered(&self, served: &str) {
        if let Ok(mut s) = self.inner.lock() {
            s.registered.remove(served);
        }
    }

    /// Where this replica stands for `served`, by the slot model.
    pub fn tier(&self, served: &str) -> SlotTier {
        let Ok(s) = self.inner.lock() else { return SlotTier::MustWait };
        let max = self.max_loras();
        if s.slots.iter().any(|e| &*e.name == served) {
            SlotTier::Resident
        } else if s.slots.len() < max {
            SlotTier::FreeSlot
        } else if s.slots.iter().any(|e| s.inflight.get(&e.name).copied().unwrap_or(0) == 0) {
            SlotTier::Evict
        } else {
            SlotTier::MustWait
        }
    }

    pub fn is_resident(&self, served: &str) -> bool {
        self.inner.lock().map(|s| s.slots.iter().any(|e| &*e.name == served)).unwrap_or(false)
    }

    /// How many slots hold an adapter (for policies that balance by loaded count).
    pub fn resident_count(&self) -> usize {
        self.inner.lock().map(|s| s.slots.len()).unwrap_or(0)
    }

    /// Whether `served` has requests in flight here (vLLM's "active" adapters).
    pub fn is_active(&self, served: &str) -> bool {
        self.inner.lock().map(|s| s.inflight.get(served).copied().unwrap_or(0) > 0).unwrap_or(false)
    }

    /// How many distinct adapters have requests in flight here.
    pub fn active_count(&self) -> usize {
        self.inner.lock().map(|s| s.inflight.values().filter(|n| **n > 0).count()).unwrap_or(0)
    }

    /// Whether the replica's metrics last reported `served` active.
    pub fn reported_active(&self, served: &str) -> bool {
        self.inner.lock().map(|s| s.reported_active.iter().any(|a| &**a == served)).unwrap_or(false)
    }

    pub fn reported_active_count(&self) -> usize {
        self.inner.lock().map(|s| s.reported_active.len()).unwrap_or(0)
    }

    /// The adapter vLLM's LRU would evict next for a new one: the least recently used slot
    /// without requests in flight (`None` with a free slot or every slot busy).
    pub fn eviction_victim(&self) -> Option<Arc<str>> {
        let s = self.inner.lock().ok()?;
        if s.slots.len() < self.max_loras() {
            return None;
        }
        s.slots
            .iter()
            .filter(|e| s.inflight.get(&e.name).copied().unwrap_or(0) == 0)
            .min_by_key(|e| e.last_used)
            .map(|e| e.name.clone())
    }

    pub fn inflight_for(&self, served: &str) -> usize {
        self.inner.lock().map(|s| s.inflight.get(served).copied().unwrap_or(0)).unwrap_or(0)
    }

    /// A request for `served` is sent: touch it in the slot model (loading it, evicting the
    /// least recently used idle adapter if the slots are full) and count it in flight.
    pub fn begin(&self, served: &Arc<str>) {
        let max = self.max_loras();
        let Ok(mut s) = self.inner.lock() else { return };
        *s.inflight.entry(served.clone()).or_insert(0) += 1;
        s.last_sent.insert(served.clone(), std::time::Instant::now());
        Self::touch(&mut s, served, max);
    }

    /// Another router of the fleet sent a request for `served` here: the replica's LRU
    /// touched it as it does for this router's own (announced in batches: state/mod.rs).
    pub fn sent_elsewhere(&self, served: &Arc<str>) {
        let max = self.max_loras();
        let Ok(mut s) = self.inner.lock() else { return };
        s.last_sent.insert(served.clone(), std::time::Instant::now());
        Self::touch(&mut s, served, max);
    }

    pub fn end(&self, served: &str) {
        let max = self.max_loras();
        if let Ok(mut s) = self.inner.lock() {
            if let Some(n) = s.inflight.get_mut(served) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    s.inflight.remove(served);
                    // A deferred adapter takes the slot that just went idle (vLLM's LRU).
                    Self::trim(&mut s, max);
                }
            }
        }
    }

    /// Evicts least recently used idle adapters while more adapters than slots are held.
    fn trim(s: &mut Inner, max: usize) {
        while s.slots.len() > max {
            let victim = s
                .slots
                .iter()
                .enumerate()
                .filter(|(_, e)| s.inflight.get(&e.name).copied().unwrap_or(0) == 0)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i);
            match victim {
                Some(i) => {
                    s.slots.remove(i);
                }
                None => return,
            }
        }
    }

    /// The replica reported these adapters active (`vllm:lora_requests_info`, stamped `at`):
    /// they are resident, whoever sent them. Only a new report teaches the model anything, and
    /// only about adapters the router did not send lately (traffic from elsewhere): the
    /// report lags, and replaying it would evict what the router has just loaded.
    pub fn observed_active(&self, names: &[Arc<str>], at: Option<f64>) {
        let max = self.max_loras();
        let Ok(mut s) = self.inner.lock() else { return };
        s.reported_active = names.to_vec();
        if at.is_some() && at == s.reported_at {
            return;
        }
        s.reported_at = at;
        for n in names {
            let ours = s.last_sent.get(n).is_some_and(|t| t.elapsed() < SENT_RECENTLY);
            if !ours && !s.slots.iter().any(|e| e.name == *n) {
                Self::touch(&mut s, n, max);
                // Not a load the router caused.
                s.loads = s.loads.saturating_sub(1);
            }
        }
    }

    fn touch(s: &mut Inner, served: &Arc<str>, max: usize) {
        s.clock += 1;
        let clock = s.clock;
        if let Some(e) = s.slots.iter_mut().find(|e| e.name == *served) {
            e.last_used = clock;
            return;
        }
        s.loads += 1;
        // A free slot, or the least recently used idle adapter's; with every slot busy, vLLM
        // defers the request until one frees (then `end` evicts for it).
        s.slots.push(Slot { name: served.clone(), last_used: clock });
        Self::trim(s, max);
    }

    pub fn snapshot(&self) -> LoraSnapshot {
        let s = self.inner.lock();
        let (registered, resident, inflight, reported_active, loads) = match &s {
            Ok(s) => {
                let mut slots: Vec<&Slot> = s.slots.iter().collect();
                slots.sort_by_key(|e| std::cmp::Reverse(e.last_used));
                (
                    s.registered.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
                    slots.iter().map(|e| e.name.to_string()).collect(),
                    s.inflight.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                    s.reported_active.iter().map(|a| a.to_string()).collect(),
                    s.loads,
                )
            }
            Err(_) => (HashMap::new(), Vec::new(), HashMap::new(), Vec::new(), 0),
        };
        LoraSnapshot {
            max_loras: self.max_loras(),
            synced: self.synced(),
            runtime_updates: match self.runtime_updates() {
                RuntimeUpdates::Unknown => "unknown",
                RuntimeUpdates::On => "on",
                RuntimeUpdates::Off => "off",
            },
            waiting: self.waiting(),
            epoch: self.epoch(),
            registered,
            resident,
            inflight,
            reported_active,
            modelled_loads: loads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn lru_model_follows_vllm() {
        let l = LoraState::new(2);
        assert_eq!(l.tier("x"), SlotTier::FreeSlot);
        l.begin(&a("x"));
        l.end("x");
        l.begin(&a("y"));
        assert_eq!(l.tier("x"), SlotTier::Resident);
        // Full, y busy, x idle: a third adapter evicts x.
        assert_eq!(l.tier("z"), SlotTier::Evict);
        l.begin(&a("z"));
        assert!(!l.is_resident("x") && l.is_resident("y") && l.is_resident("z"));
        // Both busy now: a fourth must wait.
        assert_eq!(l.tier("w"), SlotTier::MustWait);
        l.end("y");
        assert_eq!(l.tier("w"), SlotTier::Evict);
        assert_eq!(l.snapshot().modelled_loads, 3);
    }

    #[test]
    fn observed_activity_corrects_the_model() {
        let l = LoraState::new(2);
        l.begin(&a("x"));
        l.end("x");
        l.observed_active(&[a("q")], Some(1.0));
        assert!(l.is_resident("q") && l.is_resident("x"));
        assert_eq!(l.snapshot().modelled_loads, 1);
    }

    #[test]
    fn a_stale_report_does_not_undo_what_the_router_sent() {
        let l = LoraState::new(2);
        // An idle replica keeps reporting its last step: q, sent by someone else, once.
        l.observed_active(&[a("q")], Some(1.0));
        for name in ["x", "y"] {
            l.begin(&a(name));
            l.end(name);
        }
        assert!(!l.is_resident("q"));
        // The same report again (same timestamp) changes nothing.
        l.observed_active(&[a("q")], Some(1.0));
        assert!(l.is_resident("x") && l.is_resident("y") && !l.is_resident("q"));
        // A new report naming x, which the router just sent, changes nothing either.
        l.begin(&a("z"));
        l.end("z");
        l.observed_active(&[a("x")], Some(2.0));
        assert!(l.is_resident("z") && l.is_resident("y") && !l.is_resident("x"));
    }

    #[test]
    fn restart_clears_residency() {
        let l = LoraState::new(2);
        l.begin(&a("x"));
        l.restarted();
        assert_eq!(l.tier("x"), SlotTier::FreeSlot);
        assert_eq!(l.epoch(), 1);
    }
}
