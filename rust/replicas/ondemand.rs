//! Loading an adapter on the replica a request was placed on, when that replica does not
//! serve it yet. One load per adapter and replica is in flight at a time: requests that need
//! the same load wait for it (under the caller's timeout) and then find the adapter served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{vllm, Replica};
use crate::plan::Adapter;
use crate::proxy::UpstreamClient;

/// (replica, served adapter name) -> the lock its one load holds.
type Locks = HashMap<(Arc<str>, Arc<str>), Arc<tokio::sync::Mutex<()>>>;

#[derive(Default)]
pub struct LoadLocks {
    locks: Mutex<Locks>,
}

impl LoadLocks {
    fn lock_for(&self, replica: &Replica, served: &Arc<str>) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        m.entry((replica.name.clone(), served.clone())).or_default().clone()
    }
}

/// Makes `replica` serve `adapter`'s current version, loading it from its path if needed.
pub async fn ensure_loaded(
    client: &UpstreamClient,
    locks: &LoadLocks,
    replica: &Replica,
    adapter: &Adapter,
    timeout: Duration,
) -> Result<vllm::Loaded, vllm::AdapterError> {
    let Some(path) = &adapter.path else {
        if replica.lora.is_registered(&adapter.served) {
            return Ok(vllm::Loaded::Already);
        }
        return Err(vllm::AdapterError::Replica {
            status: 404,
            message: format!(
                "the replica does not serve '{}' and the router has no path to load it from",
                adapter.name
            ),
        });
    };
    load_once(client, locks, replica, &adapter.served, path, timeout).await
}

/// Loads `served` from `path` on `replica` unless it serves it already; the data plane's
/// on-demand loads and the registry's placements share the one-load-at-a-time lock.
pub async fn load_once(
    client: &UpstreamClient,
    locks: &LoadLocks,
    replica: &Replica,
    served: &Arc<str>,
    path: &str,
    timeout: Duration,
) -> Result<vllm::Loaded, vllm::AdapterError> {
    if replica.lora.registered_path(served).as_deref() == Some(path) {
        return Ok(vllm::Loaded::Already);
    }
    let lock = locks.lock_for(replica, served);
    let _held = lock.lock().await;
    // Whoever held the lock before may have loaded it.
    if replica.lora.registered_path(served).as_deref() == Some(path) {
        return Ok(vllm::Loaded::Already);
    }
    vllm::load(client, replica, served, path, timeout).await
}
