//! Loading an adapter on the replica a request was placed on, when that replica does not
//! serve it yet. One load per adapter and replica is in flight at a time, fleet-wide
//! (state/loads.rs): requests that need the same load wait for it (under the caller's
//! timeout) and then find the adapter served.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{vllm, Replica};
use crate::plan::Adapter;
use crate::proxy::UpstreamClient;
use crate::state::LiveState;

/// Makes `replica` serve `adapter`'s current version, loading it from its path if needed.
pub async fn ensure_loaded(
    client: &UpstreamClient,
    live: &LiveState,
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
    load_once(client, live, replica, &adapter.served, path, timeout).await
}

/// Loads `served` from `path` on `replica` unless it serves it already; the data plane's
/// on-demand loads and the registry's placements share the one-load-at-a-time lock.
pub async fn load_once(
    client: &UpstreamClient,
    live: &LiveState,
    replica: &Replica,
    served: &Arc<str>,
    path: &str,
    timeout: Duration,
) -> Result<vllm::Loaded, vllm::AdapterError> {
    if replica.lora.registered_path(served).as_deref() == Some(path) {
        return Ok(vllm::Loaded::Already);
    }
    let deadline = Instant::now() + timeout;
    let Some(held) = live.loads.hold(&live.store, &live.prefix, &replica.authority, served, deadline).await else {
        return Err(vllm::AdapterError::Unreachable(format!(
            "another load of it did not finish within {:.1} s",
            timeout.as_secs_f64()
        )));
    };
    // Whoever held the lock before may have loaded it.
    let result = if replica.lora.registered_path(served).as_deref() == Some(path) {
        Ok(vllm::Loaded::Already)
    } else {
        vllm::load(client, replica, served, path, deadline.saturating_duration_since(Instant::now())).await
    };
    held.release().await;
    result
}
