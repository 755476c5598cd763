//! Active health checks: every interval, `GET /health` on each endpoint of the current plan.
//! A failed probe ejects the endpoint; a good one brings it back, and syncs what the router
//! knows of its adapters (replicas/sync.rs). Connect errors on real traffic eject at once
//! (proxy/forward.rs), and this loop is what probes them back.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::Full;

use crate::proxy::RouterState;

pub async fn run(state: Arc<RouterState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let plan = state.plan.load_full();
        let interval = Duration::from_millis(plan.server.health_interval_ms.max(50));
        let timeout = Duration::from_millis(plan.server.health_timeout_ms.max(10));
        let probes = plan.endpoints.iter().map(|r| {
            let state = state.clone();
            let r = r.clone();
            async move {
                let ok = probe(&state, &r.authority, timeout).await;
                if ok {
                    super::sync::sync(&state.client, &r, timeout).await;
                    r.mark_healthy();
                } else {
                    r.mark_unhealthy();
                }
            }
        });
        futures_join_all(probes).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
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

/// Runs the futures concurrently on the current task (no extra dependency for join_all).
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(futs: impl Iterator<Item = F>) {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    for h in handles {
        let _ = h.await;
    }
}
