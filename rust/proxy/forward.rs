//! Sending a routed request upstream and relaying the answer.
//!
//! The one retry rule lives here: a request is retried on another endpoint only when the
//! connection could not be made, because then nothing reached the upstream. Once the request
//! is written it is never retried, and once response headers have gone to the client nothing
//! is retried at all. Upstream answers, errors included, are relayed with their status and body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::Full;

use super::body::{RouterBody, UpstreamBody};
use super::responses::{decision_headers, error_response};
use super::RouterState;
use crate::errors::{ErrorKind, RouterError};
use crate::observe::{Completion, Outcome, RequestRecord};
use crate::plan::{Plan, Target};
use crate::replicas::ondemand::ensure_loaded;
use crate::replicas::select::{self, View};
use crate::replicas::vllm::{AdapterError, Loaded};
use crate::replicas::{InflightGuard, Replica};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1), plus those the
/// router sets itself.
fn is_hop_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
            | "expect"
    )
}

pub async fn forward(
    state: &Arc<RouterState>,
    plan: Arc<Plan>,
    path: &'static str,
    client_headers: &HeaderMap,
    body: Bytes,
    mut record: RequestRecord,
) -> Response<RouterBody> {
    let target = match &record.decision {
        Some(d) => d.target.clone(),
        None => return fail(state, record, RouterError::new(ErrorKind::Internal, "no decision to forward")),
    };
    let mut attempts = Attempts::default();
    let id = record.request_id.clone();
    let result = send(state, &plan, &target, path, client_headers, &body, &id, &mut attempts).await;
    record.attempts = attempts.count;
    record.backend = attempts.backend;
    record.loaded_adapter = attempts.loaded_adapter;
    state.observer.metrics.retries.fetch_add(attempts.retries, std::sync::atomic::Ordering::Relaxed);
    match result {
        Ok(answered) => {
            record.first_byte_us = Some(answered.first_byte.as_micros() as u64);
            state.observer.metrics.first_byte.observe_seconds(answered.first_byte.as_secs_f64());
            relay(state, &plan, answered.upstream, record, answered.inflight)
        }
        Err(e) => fail(state, record, e),
    }
}

/// What placing and sending a request took, for its record.
#[derive(Debug, Default)]
pub(super) struct Attempts {
    /// Replicas the request was sent to (or placed on).
    pub count: u32,
    /// The last of them.
    pub backend: Option<Arc<str>>,
    /// The chosen replica had to load the adapter first.
    pub loaded_adapter: bool,
    /// Sends repeated on another replica after a connect error.
    pub retries: u64,
}

/// An upstream answer (its headers; the body still to come) and the in-flight place it holds.
pub(super) struct Answered {
    pub upstream: Response<hyper::body::Incoming>,
    pub inflight: InflightGuard,
    pub first_byte: Duration,
}

/// Places a request for `target` on a replica (loading its adapter there first when the
/// placement says so) and sends it, under the one retry rule. Shared by client requests and
/// shadow copies.
#[allow(clippy::too_many_arguments)]
pub(super) async fn send(
    state: &RouterState,
    plan: &Plan,
    target: &Target,
    path: &'static str,
    client_headers: &HeaderMap,
    body: &Bytes,
    request_id: &str,
    attempts: &mut Attempts,
) -> Result<Answered, RouterError> {
    let adapter = target.adapter.as_deref().and_then(|a| plan.adapters.get(a)).cloned();
    let load_timeout = Duration::from_millis(plan.placement.load_timeout_ms);
    let max_attempts = if plan.server.retry_connect_errors { 2 } else { 1 };
    let timeout = Duration::from_millis(plan.server.request_timeout_ms);
    let mut tried: Vec<usize> = Vec::new();
    let mut last_connect_error: Option<RouterError> = None;
    // One snapshot of the replicas for the whole request: indexes stay valid across retries.
    let set = state.live.replicas.snapshot();
    let view = View { plan, set: &set, live: &state.live };
    loop {
        let Some(pick) = select::pick(&view, target, &tried) else {
            return Err(last_connect_error.unwrap_or_else(|| no_replica(plan, target)));
        };
        let idx = pick.replica;
        let replica = set.list[idx].clone();
        attempts.count += 1;
        attempts.backend = Some(replica.name.clone());
        if let (true, Some(a)) = (pick.load, &adapter) {
            match ensure_loaded(&state.client, &state.live, &replica, a, load_timeout).await {
                Ok(Loaded::Now) => attempts.loaded_adapter = true,
                Ok(Loaded::Already) => {}
                // It serves static adapters only: place the request elsewhere.
                Err(AdapterError::RuntimeUpdatesOff) => {
                    tried.push(idx);
                    attempts.count -= 1;
                    continue;
                }
                Err(e) => {
                    let kind = match e {
                        AdapterError::Unreachable(_) => ErrorKind::UpstreamTimeout,
                        _ => ErrorKind::AdapterLoadFailed,
                    };
                    let msg = format!("The endpoint '{}' could not load the adapter `{}`: {e}", replica.name, a.name);
                    return Err(RouterError::new(kind, msg));
                }
            }
        }
        let id = if attempts.count > 1 { format!("{request_id}-{}", attempts.count) } else { request_id.to_string() };
        let request = upstream_request(&replica, path, client_headers, body.clone(), &id, plan)?;
        let inflight = replica.begin(adapter.as_ref().map(|a| a.served.clone()));
        if let Some(a) = &adapter {
            state.live.note_send(&replica.name, &a.served);
        }
        let sent = Instant::now();
        match tokio::time::timeout(timeout, state.client.request(request)).await {
            Err(_) => {
                let secs = timeout.as_secs_f64();
                return Err(RouterError::new(
                    ErrorKind::UpstreamTimeout,
                    format!("The endpoint '{}' did not answer within {secs:.1} s.", replica.name),
                ));
            }
            Ok(Err(e)) if e.is_connect() => {
                replica.mark_unhealthy();
                tried.push(idx);
                drop(inflight);
                last_connect_error = Some(RouterError::new(
                    ErrorKind::UpstreamUnreachable,
                    format!("Could not connect to the endpoint '{}': {}", replica.name, source_message(&e)),
                ));
                if attempts.count < max_attempts {
                    attempts.retries += 1;
                    continue;
                }
                return Err(last_connect_error.take().unwrap());
            }
            Ok(Err(e)) => {
                return Err(RouterError::new(
                    ErrorKind::UpstreamUnreachable,
                    format!("The endpoint '{}' failed before answering: {}", replica.name, source_message(&e)),
                ));
            }
            Ok(Ok(upstream)) => return Ok(Answered { upstream, inflight, first_byte: sent.elapsed() }),
        }
    }
}

fn no_replica(plan: &Plan, target: &Target) -> RouterError {
    let base = &plan.bases[target.base].name;
    let msg = match &target.adapter {
        Some(a) => format!("No healthy endpoint of `{base}` serves or can load the adapter `{a}`."),
        None => format!("No healthy endpoint serves the model `{base}`."),
    };
    RouterError::new(ErrorKind::NoHealthyBackend, msg)
}

/// The request for a replica: the client's headers minus hop-by-hop ones (and minus its key
/// when tenants are on), the replica's own key, and `x-request-id` so vLLM's logs name ours.
pub(super) fn upstream_request(
    replica: &Replica,
    path: &'static str,
    client_headers: &HeaderMap,
    body: Bytes,
    request_id: &str,
    plan: &Plan,
) -> Result<Request<Full<Bytes>>, RouterError> {
    let uri = Uri::builder()
        .scheme("http")
        .authority(replica.authority.as_str())
        .path_and_query(path)
        .build()
        .map_err(|e| RouterError::new(ErrorKind::Internal, format!("bad upstream URI: {e}")))?;
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    // A tenant's key is for the router; it never goes upstream.
    let keep_authorization = !plan.tenants.enabled();
    for (name, value) in client_headers {
        if !is_hop_header(name) && (keep_authorization || name != AUTHORIZATION) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Ok(host) = HeaderValue::from_str(&replica.authority) {
        headers.insert(HOST, host);
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(key) = replica.api_key() {
        headers.insert(AUTHORIZATION, key);
    }
    // vLLM turns this into its own request id (`chatcmpl-<id>`), which ties its logs to ours.
    if !headers.contains_key(&X_REQUEST_ID) {
        if let Ok(v) = HeaderValue::from_str(request_id) {
            headers.insert(X_REQUEST_ID, v);
        }
    }
    Ok(req)
}

fn relay(
    state: &Arc<RouterState>,
    plan: &Plan,
    upstream: Response<hyper::body::Incoming>,
    mut record: RequestRecord,
    inflight: InflightGuard,
) -> Response<RouterBody> {
    let (parts, incoming) = upstream.into_parts();
    record.status = parts.status.as_u16();
    let sse = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let idle = Duration::from_millis(plan.server.stream_idle_timeout_ms);
    let mut response = Response::new(RouterBody::empty());
    *response.status_mut() = parts.status;
    let headers = response.headers_mut();
    for (name, value) in &parts.headers {
        if !is_hop_header(name) || name.as_str() == "content-length" {
            headers.append(name.clone(), value.clone());
        }
    }
    decision_headers(headers, &record);
    let mut body = UpstreamBody::new(incoming, idle, sse).ending_with(&state.lifecycle.ending);
    if record.wants_usage() {
        body = body.reading_usage();
    }
    let completion = Completion::new(state.observer.clone(), record, Some(inflight));
    *response.body_mut() = RouterBody::from(body).with_completion(completion);
    response
}

/// Answers with the router's own error and records the request.
pub fn fail(state: &Arc<RouterState>, mut record: RequestRecord, err: RouterError) -> Response<RouterBody> {
    record.status = err.status().as_u16();
    record.error = Some(err.kind.name());
    let mut response = error_response(&err);
    decision_headers(response.headers_mut(), &record);
    let mut completion = Completion::new(state.observer.clone(), record, None);
    completion.outcome = Outcome::Completed;
    let body = std::mem::replace(response.body_mut(), RouterBody::empty());
    *response.body_mut() = body.with_completion(completion);
    response
}

fn source_message(e: &hyper_util::client::legacy::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing;

    fn sent_authorization(plan: &Plan) -> Option<String> {
        let mut client = HeaderMap::new();
        client.insert(AUTHORIZATION, HeaderValue::from_static("Bearer client-key"));
        let replica = Replica::new(
            &crate::replicas::ReplicaSpec {
                name: "e1".into(),
                group: "e1".into(),
                host: "127.0.0.1".into(),
                port: 9,
                weight: 1.0,
                api_key: None,
                max_loras: 1,
            },
            true,
        )
        .unwrap();
        let req = upstream_request(&replica, "/v1/chat/completions", &client, Bytes::new(), "id", plan).unwrap();
        req.headers().get(AUTHORIZATION).map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn a_tenant_key_never_goes_upstream() {
        // Without tenants the client's key is the upstream's business (vLLM's --api-key).
        assert_eq!(sent_authorization(&testing::plan()).as_deref(), Some("Bearer client-key"));
        let mut spec = testing::spec_json();
        spec["tenants"] = serde_json::json!([{"name": "acme", "keys": [{"id": "acme/1", "salt_hex": "00",
            "digest_hex": "00".repeat(32)}], "adapters": ["tech-lora"], "base_models": [], "default_adapter": null,
            "aliases": [], "intent_routing": true, "rpm": null, "tpm": null}]);
        let plan = Plan::from_json(&spec.to_string(), &crate::state::LiveState::local()).unwrap();
        assert_eq!(sent_authorization(&plan), None);
    }
}
