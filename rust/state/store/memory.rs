//! The store of a router that runs alone: everything in this process. Nothing is shared, so
//! no event ever arrives.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::{Event, Kind, LockToken};
use crate::state::experiments::{Counts, Role};
use crate::state::quotas::{Limits, Verdict, Window};
use crate::util::rng;

pub struct MemoryStore {
    epoch: Instant,
    windows: Mutex<HashMap<String, Window>>,
    records: Mutex<HashMap<(Kind, String), String>>,
    locks: Mutex<HashMap<String, (String, Instant)>>,
    counts: Mutex<BTreeMap<(String, Role, String), Counts>>,
    events: broadcast::Sender<Event>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        let (events, _) = broadcast::channel(16);
        MemoryStore {
            epoch: Instant::now(),
            windows: Mutex::default(),
            records: Mutex::default(),
            locks: Mutex::default(),
            counts: Mutex::default(),
            events,
        }
    }
}

impl MemoryStore {
    /// Seconds on this process's monotonic clock.
    fn now_s(&self) -> u64 {
        self.epoch.elapsed().as_secs()
    }

    pub fn admit(&self, tenant: &str, limits: Limits) -> Verdict {
        let now = self.now_s();
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match w.get_mut(tenant) {
            Some(window) => window.admit(now, limits),
            None => w.entry(tenant.to_string()).or_default().admit(now, limits),
        }
    }

    pub fn charge(&self, tenant: &str, tokens: u64) {
        let now = self.now_s();
        self.windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tenant.to_string())
            .or_default()
            .charge(now, tokens);
    }

    pub fn get(&self, kind: Kind, name: &str) -> Option<String> {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).get(&(kind, name.to_string())).cloned()
    }

    pub fn all(&self, kind: Kind) -> Vec<(String, String)> {
        let r = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> =
            r.iter().filter(|((k, _), _)| *k == kind).map(|((_, n), v)| (n.clone(), v.clone())).collect();
        v.sort();
        v
    }

    pub fn put(&self, kind: Kind, name: &str, value: &str) {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).insert((kind, name.to_string()), value.to_string());
    }

    pub fn swap(&self, kind: Kind, name: &str, expected: Option<&str>, value: Option<&str>) -> bool {
        let mut r = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let key = (kind, name.to_string());
        if r.get(&key).map(String::as_str) != expected {
            return false;
        }
        match value {
            Some(v) => r.insert(key, v.to_string()),
            None => r.remove(&key),
        };
        true
    }

    pub fn try_lock(&self, key: &str, ttl: Duration) -> Option<LockToken> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if locks.get(key).is_some_and(|(_, until)| *until > now) {
            return None;
        }
        let token = format!("{:016x}", rng::next_u64());
        locks.insert(key.to_string(), (token.clone(), now + ttl));
        Some(LockToken(token))
    }

    pub fn unlock(&self, key: &str, token: &LockToken) {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if locks.get(key).is_some_and(|(t, _)| *t == token.0) {
            locks.remove(key);
        }
    }

    pub fn add_counts(&self, experiment: &str, role: Role, adapter: &str, delta: &Counts) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.entry((experiment.to_string(), role, adapter.to_string())).or_default().add(delta);
    }

    pub fn counts(&self, experiment: &str) -> Vec<(Role, String, Counts)> {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.iter().filter(|((e, _, _), _)| e == experiment).map(|((_, r, a), v)| (*r, a.clone(), v.clone())).collect()
    }

    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_exclude_until_released_or_expired() {
        let s = MemoryStore::default();
        let t = s.try_lock("k", Duration::from_secs(60)).unwrap();
        assert!(s.try_lock("k", Duration::from_secs(60)).is_none());
        s.unlock("k", &LockToken("not mine".into()));
        assert!(s.try_lock("k", Duration::from_secs(60)).is_none());
        s.unlock("k", &t);
        assert!(s.try_lock("k", Duration::from_millis(0)).is_some());
        // An expired lock is free.
        assert!(s.try_lock("k", Duration::from_secs(1)).is_some());
    }

    #[test]
    fn records_by_kind() {
        let s = MemoryStore::default();
        s.put(Kind::Adapters, "a", "1");
        s.put(Kind::Tenants, "a", "2");
        assert!(s.swap(Kind::Tenants, "a", Some("2"), None));
        assert_eq!(s.all(Kind::Adapters), vec![("a".to_string(), "1".to_string())]);
        assert_eq!(s.get(Kind::Tenants, "a"), None);
        // Compare and swap: only over the value expected.
        assert!(!s.swap(Kind::Adapters, "a", None, Some("2")));
        assert!(!s.swap(Kind::Adapters, "a", Some("0"), Some("2")));
        assert!(s.swap(Kind::Adapters, "a", Some("1"), Some("2")));
        assert!(s.swap(Kind::Adapters, "a", Some("2"), None));
        assert!(s.swap(Kind::Adapters, "a", None, Some("3")));
    }
}
