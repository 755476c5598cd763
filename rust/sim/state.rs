//! The simulator's state: registered adapters (vLLM's frontend registry), GPU slots (the
//! engine's LRU of resident adapters), load counters and what `/metrics` reports.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{Notify, Semaphore};

use super::SimConfig;

pub struct SimState {
    pub config: SimConfig,
    /// Adapters the API serves, in registration order: (name, path).
    registry: Mutex<Vec<(Arc<str>, String)>>,
    slots: Mutex<Slots>,
    slot_freed: Notify,
    /// `--max-num-seqs`: requests beyond it wait for capacity.
    pub capacity: Arc<Semaphore>,
    pub running: AtomicUsize,
    pub waiting_capacity: AtomicUsize,
    pub waiting_deferred: AtomicUsize,
    pub requests_total: AtomicU64,
    pub cancelled_total: AtomicU64,
    pub lora_loads_total: AtomicU64,
    pub lora_evictions_total: AtomicU64,
    pub prompt_tokens_total: AtomicU64,
    pub generation_tokens_total: AtomicU64,
    pub finished_length_total: AtomicU64,
    /// `vllm:lora_requests_info` series: (adapter list, last timestamp); old sets are kept, as vLLM does.
    lora_info: Mutex<Vec<(String, f64)>>,
    recent: Mutex<VecDeque<(String, Bytes)>>,
    pub started: std::time::Instant,
    /// Unix time the simulator started, for `process_start_time_seconds`.
    pub started_unix: f64,
}

#[derive(Default)]
struct Slots {
    capacity: usize,
    entries: Vec<Slot>,
    clock: u64,
}

struct Slot {
    name: Arc<str>,
    users: usize,
    last_used: u64,
}

/// How an adapter got its GPU slot.
#[derive(Debug, PartialEq, Eq)]
pub enum SlotGrant {
    Resident,
    /// Loaded into a free or evicted slot; the caller pays the load delay.
    Loaded {
        evicted: Option<Arc<str>>,
    },
}

impl SimState {
    pub fn new(config: SimConfig) -> SimState {
        let registry = config.lora_modules.iter().map(|(n, p)| (Arc::from(n.as_str()), p.clone())).collect();
        let slots = Slots { capacity: config.max_loras, ..Slots::default() };
        let capacity = Arc::new(Semaphore::new(config.max_num_seqs.max(1)));
        SimState {
            config,
            registry: Mutex::new(registry),
            slots: Mutex::new(slots),
            slot_freed: Notify::new(),
            capacity,
            running: AtomicUsize::new(0),
            waiting_capacity: AtomicUsize::new(0),
            waiting_deferred: AtomicUsize::new(0),
            requests_total: AtomicU64::new(0),
            cancelled_total: AtomicU64::new(0),
            lora_loads_total: AtomicU64::new(0),
            lora_evictions_total: AtomicU64::new(0),
            prompt_tokens_total: AtomicU64::new(0),
            generation_tokens_total: AtomicU64::new(0),
            finished_length_total: AtomicU64::new(0),
            lora_info: Mutex::new(vec![(String::new(), now_ts())]),
            recent: Mutex::new(VecDeque::new()),
            started: std::time::Instant::now(),
            started_unix: now_ts(),
        }
    }

    pub fn adapters(&self) -> Vec<(Arc<str>, String)> {
        self.registry.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn adapter(&self, name: &str) -> Option<Arc<str>> {
        self.registry.lock().ok()?.iter().find(|(n, _)| &**n == name).map(|(n, _)| n.clone())
    }

    pub fn register(&self, name: &str, path: &str) -> bool {
        let Ok(mut r) = self.registry.lock() else { return false };
        if let Some(entry) = r.iter_mut().find(|(n, _)| &**n == name) {
            entry.1 = path.to_string();
            return false;
        }
        r.push((Arc::from(name), path.to_string()));
        true
    }

    /// Removes the name from the API. Like vLLM (#54839), the weights stay in their slot
    /// until LRU eviction.
    pub fn unregister(&self, name: &str) -> bool {
        let Ok(mut r) = self.registry.lock() else { return false };
        let before = r.len();
        r.retain(|(n, _)| &**n != name);
        r.len() != before
    }

    /// Gives `name` a GPU slot, waiting while every slot is held by adapters with requests in
    /// flight (vLLM defers such requests).
    pub async fn acquire_slot(&self, name: &Arc<str>) -> SlotGrant {
        let mut deferred = false;
        loop {
            let notified = self.slot_freed.notified();
            if let Some(grant) = self.try_acquire(name) {
                if deferred {
                    self.waiting_deferred.fetch_sub(1, Ordering::Relaxed);
                }
                if let SlotGrant::Loaded { evicted } = &grant {
                    self.lora_loads_total.fetch_add(1, Ordering::Relaxed);
                    if evicted.is_some() {
                        self.lora_evictions_total.fetch_add(1, Ordering::Relaxed);
                    }
                }
                return grant;
            }
            if !deferred {
                deferred = true;
                self.waiting_deferred.fetch_add(1, Ordering::Relaxed);
            }
            notified.await;
        }
    }

    fn try_acquire(&self, name: &Arc<str>) -> Option<SlotGrant> {
        let mut s = self.slots.lock().ok()?;
        s.clock += 1;
        let clock = s.clock;
        if let Some(slot) = s.entries.iter_mut().find(|e| e.name == *name) {
            slot.users += 1;
            slot.last_used = clock;
            return Some(SlotGrant::Resident);
        }
        if s.entries.len() < s.capacity {
            s.entries.push(Slot { name: name.clone(), users: 1, last_used: clock });
            return Some(SlotGrant::Loaded { evicted: None });
        }
        let victim = s
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.users == 0)
            .min_by_key(|(_, e)| e.last_used)
            .map(|(i, _)| i)?;
        let evicted =
            std::mem::replace(&mut s.entries[victim], Slot { name: name.clone(), users: 1, last_used: clock });
        Some(SlotGrant::Loaded { evicted: Some(evicted.name) })
    }

    pub fn release_slot(&self, name: &Arc<str>) {
        if let Ok(mut s) = self.slots.lock() {
            if let Some(slot) = s.entries.iter_mut().find(|e| e.name == *name) {
                slot.users = slot.users.saturating_sub(1);
            }
        }
        self.slot_freed.notify_waiters();
    }

    /// Adapters resident in GPU slots, most recently used first.
    pub fn resident(&self) -> Vec<Arc<str>> {
        let Ok(s) = self.slots.lock() else { return Vec::new() };
        let mut e: Vec<_> = s.entries.iter().map(|e| (e.last_used, e.name.clone())).collect();
        e.sort_by_key(|x| std::cmp::Reverse(x.0));
        e.into_iter().map(|(_, n)| n).collect()
    }

    /// Adapters with requests in flight, for `vllm:lora_requests_info`.
    pub fn active_adapters(&self) -> Vec<Arc<str>> {
        let Ok(s) = self.slots.lock() else { return Vec::new() };
        s.entries.iter().filter(|e| e.users > 0).map(|e| e.name.clone()).collect()
    }

    /// Records the current adapter activity as vLLM's engine does each iteration: the series
    /// for the current set gets the newest timestamp; older sets stay with their old one.
    pub fn touch_lora_info(&self) {
        let active: Vec<String> = self.active_adapters().iter().map(|a| a.to_string()).collect();
        let key = active.join(",");
        if let Ok(mut info) = self.lora_info.lock() {
            let ts = now_ts();
            match info.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = ts,
                None => info.push((key, ts)),
            }
        }
    }

    pub fn lora_info(&self) -> Vec<(String, f64)> {
        self.lora_info.lock().map(|i| i.clone()).unwrap_or_default()
    }

    pub fn remember(&self, path: &str, body: &Bytes) {
        let keep = self.config.record_requests;
        if keep == 0 {
            return;
        }
        if let Ok(mut r) = self.recent.lock() {
            if r.len() >= keep {
                r.pop_front();
            }
            r.push_back((path.to_string(), body.clone()));
        }
    }

    pub fn recent(&self) -> Vec<(String, Bytes)> {
        self.recent.lock().map(|r| r.iter().cloned().collect()).unwrap_or_default()
    }

    pub fn clear_recent(&self) {
        if let Ok(mut r) = self.recent.lock() {
            r.clear();
        }
    }
}

fn now_ts() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// What vLLM requires of an adapter path: a directory holding `adapter_config.json`, whose
/// rank (`r`) fits `--max-lora-rank`.
pub fn check_adapter_dir(path: &str, max_rank: u32) -> Result<(), AdapterDirError> {
    let dir = Path::new(path);
    let config = dir.join("adapter_config.json");
    if !dir.is_dir() || !config.is_file() {
        return Err(AdapterDirError::NotFound);
    }
    let text = std::fs::read_to_string(&config).map_err(|_| AdapterDirError::NotFound)?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| AdapterDirError::NotFound)?;
    if let Some(r) = v.get("r").and_then(serde_json::Value::as_u64) {
        if r > u64::from(max_rank) {
            return Err(AdapterDirError::RankTooLarge(r, max_rank));
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub enum AdapterDirError {
    NotFound,
    RankTooLarge(u64, u32),
}

impl std::fmt::Display for AdapterDirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdapterDirError::NotFound => {
                write!(f, "no adapter found (a directory with adapter_config.json is required)")
            }
            AdapterDirError::RankTooLarge(r, m) => write!(f, "LoRA rank {r} is greater than max_lora_rank {m}."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(max_loras: usize) -> SimState {
        SimState::new(SimConfig {
            served_model_name: "base".into(),
            model_path: "base".into(),
            lora_modules: vec![],
            max_loras,
            max_lora_rank: 16,
            max_model_len: 512,
            max_num_seqs: 8,
            allow_runtime_lora_updating: true,
            ttft_ms: 0.0,
            itl_ms: 0.0,
            lora_load_ms: 0.0,
            default_max_tokens: 4,
            record_requests: 0,
        })
    }

    #[test]
    fn lru_evicts_the_idle_least_recent() {
        let s = state(2);
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        assert_eq!(s.try_acquire(&a), Some(SlotGrant::Loaded { evicted: None }));
        s.release_slot(&a);
        assert_eq!(s.try_acquire(&b), Some(SlotGrant::Loaded { evicted: None }));
        s.release_slot(&b);
        assert_eq!(s.try_acquire(&a), Some(SlotGrant::Resident));
        s.release_slot(&a);
        // b is least recently used now.
        assert_eq!(s.try_acquire(&c), Some(SlotGrant::Loaded { evicted: Some(b.clone()) }));
        // a and c are busy: d must wait.
        assert_eq!(s.try_acquire(&a), Some(SlotGrant::Resident));
        assert_eq!(s.try_acquire(&"d".into()), None);
    }
}
