//! Shadow traffic: a copy of a request goes to an experiment's candidate adapter, after the
//! real request is on its way. The copy's answer is read to its end (so vLLM does the whole
//! work, as it would for a client) and discarded; only its statistics are kept. It never
//! touches the client's response, and a failure only shows in those statistics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;

use super::forward::upstream_request;
use super::RouterState;
use crate::observe::usage::UsageScan;
use crate::plan::{Plan, Target};
use crate::replicas::ondemand::ensure_loaded;
use crate::replicas::select;
use crate::tenants::experiments::Shadow;

/// Sends the copy in the background. `body` is the routed request body; its `model` is
/// replaced by the candidate's served name.
pub fn spawn(
    state: &Arc<RouterState>,
    plan: Arc<Plan>,
    path: &'static str,
    client_headers: &HeaderMap,
    body: &serde_json::Map<String, serde_json::Value>,
    shadow: &Shadow,
    request_id: &str,
) {
    let Some(a) = plan.adapters.get(&shadow.adapter).cloned() else {
        return;
    };
    let stats = shadow.stats.clone();
    let mut body = body.clone();
    body.insert("model".into(), serde_json::Value::String(a.served.to_string()));
    let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let mut headers = client_headers.clone();
    // The copy gets its own request id (vLLM keys requests by it).
    headers.remove("x-request-id");
    let id = format!("{request_id}-shadow");
    let state = state.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let target = Target {
            base: a.base,
            adapter: Some(a.name.clone()),
            score: 1.0,
            use_reasoning: None,
            reasoning_effort: Arc::from(""),
        };
        let Some(pick) = select::pick(&plan, &target, &[]) else {
            stats.record(503, None, started.elapsed().as_secs_f64(), None);
            return;
        };
        let replica = plan.endpoints[pick.replica].clone();
        if pick.load {
            let timeout = Duration::from_millis(plan.placement.load_timeout_ms);
            if ensure_loaded(&state.client, &state.loads, &replica, &a, timeout).await.is_err() {
                stats.record(502, None, started.elapsed().as_secs_f64(), None);
                return;
            }
        }
        let Ok(request) = upstream_request(&replica, path, &headers, body, &id, &plan) else {
            return;
        };
        let _inflight = replica.begin(Some(a.served.clone()));
        let timeout = Duration::from_millis(plan.server.request_timeout_ms);
        let response = match tokio::time::timeout(timeout, state.client.request(request)).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => return stats.record(502, None, started.elapsed().as_secs_f64(), None),
            Err(_) => return stats.record(504, None, started.elapsed().as_secs_f64(), None),
        };
        let first_byte = started.elapsed().as_secs_f64();
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut scan = UsageScan::default();
        let idle = Duration::from_millis(plan.server.stream_idle_timeout_ms);
        loop {
            match tokio::time::timeout(idle, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(d) = frame.data_ref() {
                        scan.feed(d);
                    }
                }
                Ok(None) => break,
                Ok(Some(Err(_))) | Err(_) => {
                    return stats.record(502, Some(first_byte), started.elapsed().as_secs_f64(), None);
                }
            }
        }
        stats.record(status, Some(first_byte), started.elapsed().as_secs_f64(), scan.result());
    });
}
