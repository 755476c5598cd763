//! Active health checks: every interval, `GET /health` on each replica. A failed probe ejects
//! the replica; a good one brings it back, and syncs what the router knows of its adapters
//! (replicas/sync.rs). Connect errors on real traffic eject at once (proxy/forward.rs), and
//! this loop is what probes them back.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::Full;

use super::Replica;
use crate::proxy::RouterState;

pub async fn run(state: Arc<RouterState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let interval = Duration::from_millis(state.plan.load().server.health_interval_ms.max(50));
        let probes: Vec<_> = state
            .live
            .replicas
            .snapshot()
            .list
            .iter()
            .map(|r| {
                let (state, r) = (state.clone(), r.clone());
                tokio::spawn(async move { check(&state, &r).await })
            })
            .collect();
        for p in probes {
            let _ = p.await;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Probes one replica and, if it answers, syncs it and lets it take traffic.
pub async fn check(state: &RouterState, r: &Replica) {
    let timeout = Duration::from_millis(state.plan.load().server.health_timeout_ms.max(10));
    if probe(state, &r.authority, timeout).await {
        super::sync::sync(&state.client, r, timeout).await;
        r.mark_healthy();
    } else {
        r.mark_unhealthy();
    }
}

async fn probe(state: &RouterState, authority: &str, timeout: Duration) -> bool {
    let Ok(uri) = Uri::builder().scheme("http").authority(authority).path_and_query("/health").build() else {
        return false;
    };
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.uri_mut() = uri;
    match tokio::time::timeout(timeout, state.client.request(req)).await {
        Ok(Ok(resp)) => resp.status().is_success(),
        _ => false,
    }
}
