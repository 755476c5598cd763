//! Live state: everything that changes while the router runs, apart from the plan (which is
//! configuration, compiled once and immutable). The replicas and what the router knows of
//! them (`membership`, `replica`, `residency`, `demand`), quota windows and the other state a
//! fleet of routers shares (`store`, through one interface with an in-process and a Redis
//! implementation), experiments' run-time weights and statistics (`experiments`), adapters'
//! requests in flight and the one-load-at-a-time locks (`loads`).
//!
//! The plan reads state through handles it takes when it compiles (an experiment's live part,
//! an adapter's in-flight counter), so state outlives reloads without the plan lending it from
//! one compile to the next; nothing here knows the plan.
//!
//! `run` keeps this router in step with the store: it reads every run-time record at start
//! and after each reconnection, applies the changes other routers announce, and sends
//! experiment statistics every second. Records that the Python layer owns (adapters and
//! tenants registered at run time) go to the `RecordSink` it registers.

pub mod demand;
pub mod experiments;
pub mod loads;
pub mod membership;
pub mod quotas;
pub mod replica;
pub mod residency;
pub mod store;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use experiments::{Experiments, WeightOverride};
use store::{Event, Kind, Store, Unavailable};

pub type SinkFuture<T = ()> = Pin<Box<dyn Future<Output = Result<T, String>> + Send>>;

/// Where run-time records the core does not own go (the Python registry and tenant store).
pub trait RecordSink: Send + Sync {
    /// Records of `kind` changed: each name with its value, `None` if it was deleted. With
    /// `complete`, these are every record of the kind: any other is gone.
    fn apply(&self, kind: Kind, records: Vec<(String, Option<String>)>, complete: bool) -> SinkFuture;

    /// Every record of `kind` it holds, as written to the store (to write back after the
    /// store lost them).
    fn records(&self, kind: Kind) -> SinkFuture<Vec<(String, String)>>;
}

pub struct LiveState {
    pub replicas: membership::Membership,
    /// Recent requests per adapter (placement's eviction cost).
    pub demand: demand::Demand,
    pub store: Store,
    /// Prefix of this router's keys in a shared store.
    pub prefix: String,
    pub experiments: Experiments,
    pub loads: loads::LoadLocks,
    /// The round-robin placement policy's position.
    pub round_robin: AtomicUsize,
    /// Requests in flight per adapter through this router (for `max_concurrency`).
    adapters: Mutex<HashMap<Arc<str>, Arc<AtomicUsize>>>,
    /// Requests this router sent, as (replica, served adapter), not yet announced to the
    /// fleet: the other routers' residency models learn from them.
    sends: Mutex<Vec<(Arc<str>, Arc<str>)>>,
    sink: OnceLock<Arc<dyn RecordSink>>,
    /// Every run-time record has been read from the store at least once.
    synced: AtomicBool,
    /// A change was missed: read everything again once the store answers.
    stale: AtomicBool,
}

/// How often experiment statistics go to the store, and a router that could not read the
/// store at start tries again.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// How often this router tells the fleet where it sent requests.
const SENDS_INTERVAL: Duration = Duration::from_millis(100);
/// Sends kept for announcing at most (while the store is unreachable, the oldest go).
const SENDS_KEPT: usize = 4096;

impl LiveState {
    pub fn new(store: Store, prefix: &str) -> Arc<LiveState> {
        Arc::new(LiveState {
            replicas: Default::default(),
            demand: Default::default(),
            store,
            prefix: prefix.to_string(),
            experiments: Default::default(),
            loads: Default::default(),
            round_robin: AtomicUsize::new(0),
            adapters: Mutex::default(),
            sends: Mutex::default(),
            sink: OnceLock::new(),
            synced: AtomicBool::new(false),
            stale: AtomicBool::new(true),
        })
    }

    /// A router alone, with its state in the process.
    pub fn local() -> Arc<LiveState> {
        LiveState::new(Store::memory(), "lora-router")
    }

    /// The live state for a store spec: in the process, or shared through Redis.
    pub fn from_spec(spec: &store::StoreSpec) -> Result<Arc<LiveState>, String> {
        Ok(LiveState::new(Store::from_spec(spec)?, &spec.prefix))
    }

    /// The counter of an adapter's requests in flight through this router.
    pub fn adapter_inflight(&self, name: &Arc<str>) -> Arc<AtomicUsize> {
        let mut m = self.adapters.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(name.clone()).or_default().clone()
    }

    /// A request for `served` went to `replica`: the fleet hears of it in the next batch.
    pub fn note_send(&self, replica: &Arc<str>, served: &Arc<str>) {
        if !self.store.shared() {
            return;
        }
        let mut s = self.sends.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() >= SENDS_KEPT {
            s.remove(0);
        }
        s.push((replica.clone(), served.clone()));
    }

    /// Announces the sends noted since the last batch (the last of each pair, in order).
    async fn announce_sends(&self) {
        let batch = std::mem::take(&mut *self.sends.lock().unwrap_or_else(|e| e.into_inner()));
        if batch.is_empty() {
            return;
        }
        let mut seen = std::collections::HashSet::new();
        let mut latest: Vec<(String, String)> = Vec::new();
        for (r, a) in batch.iter().rev() {
            if seen.insert((r.clone(), a.clone())) {
                latest.push((r.to_string(), a.to_string()));
            }
        }
        latest.reverse();
        let _ = self.store.announce_sends(&latest).await;
    }

    /// Other routers' sends: each replica's slot model touches the adapter, as vLLM's LRU did.
    fn apply_sends(&self, sends: &[(String, String)]) {
        let set = self.replicas.snapshot();
        for (replica, served) in sends {
            if let Some(r) = set.find(replica) {
                r.lora.sent_elsewhere(&Arc::from(served.as_str()));
            }
        }
    }

    pub fn set_sink(&self, sink: Arc<dyn RecordSink>) {
        let _ = self.sink.set(sink);
    }

    /// Whether every run-time record has been read from the store.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    /// Reads every run-time record and hands it on; the router is in step afterwards.
    pub async fn resync(&self) -> Result<(), String> {
        // Adapters before tenants: a run-time tenant may name a run-time adapter.
        for kind in [Kind::Adapters, Kind::Tenants, Kind::Experiments] {
            let records = self.store.all(kind).await.map_err(|Unavailable(e)| e)?;
            self.apply(kind, records.into_iter().map(|(n, v)| (n, Some(v))).collect(), true).await?;
        }
        self.stale.store(false, Ordering::Relaxed);
        self.synced.store(true, Ordering::Relaxed);
        Ok(())
    }

    async fn apply_one(&self, kind: Kind, name: String) -> Result<(), String> {
        let value = self.store.get(kind, &name).await.map_err(|Unavailable(e)| e)?;
        self.apply(kind, vec![(name, value)], false).await
    }

    async fn apply(&self, kind: Kind, records: Vec<(String, Option<String>)>, complete: bool) -> Result<(), String> {
        if kind == Kind::Experiments {
            self.apply_weights(&records, complete);
            return Ok(());
        }
        match self.sink.get() {
            Some(sink) => sink.apply(kind, records, complete).await,
            None => Ok(()),
        }
    }

    fn apply_weights(&self, records: &[(String, Option<String>)], complete: bool) {
        if complete {
            for (name, live) in self.experiments.all() {
                if !records.iter().any(|(n, _)| **n == *name) {
                    live.weights.store(None);
                }
            }
        }
        for (name, value) in records {
            let parsed = value.as_deref().and_then(|v| serde_json::from_str::<WeightOverride>(v).ok());
            self.experiments.get(name).weights.store(parsed.map(Arc::new));
        }
    }

    /// Writes back every record this router knows that the store lacks (after Redis lost the
    /// fleet's data), then reads everything again.
    pub async fn reseed(&self) -> Result<(), String> {
        for kind in [Kind::Adapters, Kind::Tenants, Kind::Experiments] {
            let known: Vec<(String, String)> = match (kind, self.sink.get()) {
                (Kind::Experiments, _) => self
                    .experiments
                    .all()
                    .into_iter()
                    .filter_map(|(n, e)| Some((n.to_string(), serde_json::to_string(&*e.weights.load_full()?).ok()?)))
                    .collect(),
                (_, Some(sink)) => sink.records(kind).await?,
                (_, None) => vec![],
            };
            for (name, value) in known {
                self.store.put_new(kind, &name, &value).await.map_err(|Unavailable(e)| e)?;
            }
        }
        self.resync().await
    }

    /// Sends every experiment arm's new statistics to the store.
    pub async fn flush_stats(&self) -> Result<(), String> {
        for (name, live) in self.experiments.all() {
            for (role, adapter, delta) in live.take_unflushed() {
                if let Err(Unavailable(e)) = self.store.add_counts(&name, role, &adapter, &delta).await {
                    live.restore_unflushed(role, &adapter, &delta);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// Keeps this router in step with the store until `stop` changes.
pub async fn run(live: Arc<LiveState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut events = live.store.events();
    let watcher = {
        let (live, stop) = (live.clone(), stop.clone());
        tokio::spawn(async move { live.store.watch(stop).await })
    };
    let _ = live.resync().await;
    let mut tick = tokio::time::interval(SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut gossip = tokio::time::interval(SENDS_INTERVAL);
    gossip.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => {
                let outcome = match event {
                    Ok(Event::Changed { kind, name }) => live.apply_one(kind, name).await,
                    Ok(Event::Resync) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => live.resync().await,
                    Ok(Event::Reseed) => live.reseed().await,
                    Ok(Event::Sends(sends)) => {
                        live.apply_sends(&sends);
                        Ok(())
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if outcome.is_err() {
                    live.stale.store(true, Ordering::Relaxed);
                }
            }
            _ = gossip.tick(), if live.store.shared() => live.announce_sends().await,
            _ = tick.tick() => {
                if live.stale.load(Ordering::Relaxed) {
                    let _ = live.resync().await;
                }
                let _ = live.flush_stats().await;
            }
            _ = stop.changed() => {
                let _ = live.flush_stats().await;
                let _ = watcher.await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::replica::ReplicaSpec;

    #[test]
    fn other_routers_sends_reach_the_slot_model() {
        let live = LiveState::local();
        let spec = ReplicaSpec {
            name: "r0".into(),
            group: "r0".into(),
            host: "127.0.0.1".into(),
            port: 9,
            weight: 1.0,
            api_key: None,
            max_loras: 2,
        };
        live.replicas.set(&[("r0".into(), Some(vec![spec]))]).unwrap();
        live.apply_sends(&[("r0".into(), "a".into()), ("r0".into(), "b".into()), ("gone".into(), "c".into())]);
        let r = live.replicas.snapshot().find("r0").unwrap().clone();
        assert!(r.lora.is_resident("a") && r.lora.is_resident("b"));
        // An announced send counts as the fleet's own: a lagging metrics report of it is not news.
        live.apply_sends(&[("r0".into(), "c".into())]);
        assert!(!r.lora.is_resident("a") && r.lora.is_resident("c"));
        // In the process, nothing is noted for the fleet.
        live.note_send(&Arc::from("r0"), &Arc::from("a"));
        assert!(live.sends.lock().unwrap().is_empty());
    }
}
