//! Shadow traffic: a copy of a request goes to an experiment's candidate adapter, after the
//! real request is on its way, placed and sent as a client request is (proxy/forward.rs).
//! The copy's answer is read to its end (so vLLM does the whole work, as it would for a
//! client) and discarded; only its statistics are kept. It never touches the client's
//! response, and a failure only shows in those statistics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;

use super::forward::{send, Attempts};
use super::RouterState;
use crate::observe::usage::UsageScan;
use crate::plan::{Plan, Target};
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
        let target = Target::named(a.base, Some(a.name.clone()));
        let mut attempts = Attempts::default();
        let answered = match send(&state, &plan, &target, path, &headers, &body, &id, &mut attempts).await {
            Ok(a) => a,
            Err(e) => return stats.record(e.status().as_u16(), None, started.elapsed().as_secs_f64(), None),
        };
        let first_byte = answered.first_byte.as_secs_f64();
        let status = answered.upstream.status().as_u16();
        let mut body = answered.upstream.into_body();
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
        // The replica's in-flight place is held until the copy's body has ended.
        drop(answered.inflight);
        stats.record(status, Some(first_byte), started.elapsed().as_secs_f64(), scan.result());
    });
}
