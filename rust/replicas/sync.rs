//! Keeping the router's picture of a healthy replica in step with the replica: the adapters
//! its API serves (`/v1/models`), its queue, its LoRA slot count and active adapters, and its
//! start time (`/metrics`), and (once) whether it accepts run-time adapter loads. Runs after each good health probe; a failed read leaves the
//! picture as it was.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{vllm, Replica};
use crate::proxy::UpstreamClient;
use crate::state::residency::RuntimeUpdates;

pub async fn sync(client: &UpstreamClient, replica: &Replica, timeout: Duration) {
    // Metrics first: a restart clears the slot model before the new adapter list arrives.
    if let Ok(m) = vllm::metrics(client, replica, timeout).await {
        if let Some(started) = m.started {
            replica.lora.observe_start(started);
        }
        replica.lora.set_waiting(m.waiting.unwrap_or(0));
        if let Some(max) = m.max_lora {
            replica.lora.set_max_loras(max);
        }
        let active: Vec<Arc<str>> = m.active.iter().map(|a| Arc::from(a.as_str())).collect();
        replica.lora.observed_active(&active, m.active_at);
    }
    if replica.lora.runtime_updates() == RuntimeUpdates::Unknown {
        let _ = vllm::probe_runtime_updates(client, replica, timeout).await;
    }
    if let Ok(adapters) = vllm::list_adapters(client, replica, timeout).await {
        let registered: HashMap<Arc<str>, String> =
            adapters.into_iter().map(|(name, root)| (Arc::from(name.as_str()), root)).collect();
        replica.lora.set_registered(registered);
    }
}
