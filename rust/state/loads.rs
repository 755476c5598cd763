//! One load of an adapter on a replica at a time, fleet-wide. Requests of this router that
//! need the same load queue on a local lock; routers sharing a store also take the store's
//! lock, so three routers never load the same adapter on the same vLLM replica at once. If
//! the store cannot be reached the load goes ahead under the local lock alone (vLLM answers
//! a second load of the same adapter with "already loaded", which counts as loaded).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::store::{LockToken, Store};

/// (replica address, served adapter name) -> the local lock its load holds.
type Locks = HashMap<(String, Arc<str>), Arc<tokio::sync::Mutex<()>>>;

/// How often a router waiting for another's load looks again.
const POLL: Duration = Duration::from_millis(50);

#[derive(Default)]
pub struct LoadLocks {
    locks: Mutex<Locks>,
}

/// Held while one load runs; `release` gives the store's lock back (else it expires).
pub struct LoadGuard<'a> {
    _local: tokio::sync::OwnedMutexGuard<()>,
    shared: Option<(&'a Store, String, LockToken)>,
}

impl LoadGuard<'_> {
    pub async fn release(self) {
        if let Some((store, key, token)) = &self.shared {
            let _ = store.unlock(key, token).await;
        }
    }
}

impl LoadLocks {
    fn local(&self, replica: &str, served: &Arc<str>) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        // Forget locks nobody holds or waits for, so the table stays as small as the loads.
        if m.len() > 256 {
            m.retain(|_, l| Arc::strong_count(l) > 1);
        }
        m.entry((replica.to_string(), served.clone())).or_default().clone()
    }

    /// Waits (until `deadline`) for the right to load `served` on the replica at `replica`.
    pub async fn hold<'a>(
        &self,
        store: &'a Store,
        prefix: &str,
        replica: &str,
        served: &Arc<str>,
        deadline: Instant,
    ) -> Option<LoadGuard<'a>> {
        let local = tokio::time::timeout_at(deadline.into(), self.local(replica, served).lock_owned()).await.ok()?;
        let key = format!("{prefix}:load:{replica}:{served}");
        let ttl = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        loop {
            match store.try_lock(&key, ttl).await {
                Ok(Some(token)) => return Some(LoadGuard { _local: local, shared: Some((store, key, token)) }),
                Ok(None) if Instant::now() + POLL < deadline => tokio::time::sleep(POLL).await,
                Ok(None) => return None,
                Err(_) => return Some(LoadGuard { _local: local, shared: None }),
            }
        }
    }
}
