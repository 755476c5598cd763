//! The router's HTTP surface. `inference` is the request path, top to bottom:
//! read body → parse → decide (signals) → rewrite → forward → respond with decision headers,
//! recorded once by the body's `Completion`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;

use super::admin;
use super::body::RouterBody;
use super::forward::{fail, forward};
use super::lifecycle;
use super::responses::{error_response, json_value, model_list};
use super::shadow;
use super::RouterState;
use crate::decision::{decide, rewrite, RequestContext};
use crate::errors::{ErrorKind, RouterError};
use crate::observe::RequestRecord;
use crate::request::{ApiKind, RequestView};
use crate::signals::Signal;
use crate::state::quotas;

const KNOWN_PATHS: &[&str] = &[
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/models",
    "/v1/classify",
    "/health",
    "/livez",
    "/readyz",
    "/metrics",
];

pub async fn handle(state: Arc<RouterState>, req: Request<Incoming>) -> Result<Response<RouterBody>, Infallible> {
    // HEAD is GET without the body (hyper leaves the body out): load balancers probe with it.
    let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
    let mut response = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/chat/completions") => inference(&state, req, ApiKind::Chat).await,
        (&Method::POST, "/v1/completions") => inference(&state, req, ApiKind::Completions).await,
        (&Method::POST, "/v1/classify") => classify(&state, req).await,
        (_, "/v1/models") if read_only => models(&state, req.headers()),
        (_, "/health") if read_only => health(&state).await,
        (_, "/livez") if read_only => lifecycle::livez(),
        (_, "/readyz") if read_only => lifecycle::readyz(&state),
        (_, "/metrics") if read_only => {
            let plan = state.plan.load_full();
            // With tenants, metrics (which name every adapter) are for the operator only.
            if plan.tenants.enabled() {
                if let Err(e) = admin::check_key(&plan, req.headers()) {
                    return Ok(e);
                }
            }
            let mut r = Response::new(RouterBody::full(state.observer.metrics.render(&plan, &state.live)));
            r.headers_mut()
                .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; version=0.0.4"));
            r
        }
        (_, p) if p == "/admin" || p.starts_with("/admin/") => {
            let (parts, body) = req.into_parts();
            let limit = state.plan.load().server.max_body_bytes;
            match read_body(&parts.headers, body, limit).await {
                Ok(bytes) => admin::handle(&state, &parts.method, parts.uri.path(), &parts.headers, bytes).await,
                Err(e) => error_response(&e),
            }
        }
        (m, p) if KNOWN_PATHS.contains(&p) => {
            error_response(&RouterError::new(ErrorKind::MethodNotAllowed, format!("Method {m} is not allowed on {p}.")))
        }
        (_, p) => error_response(&RouterError::new(ErrorKind::RouteNotFound, format!("No route for {p}."))),
    };
    if state.lifecycle.draining() {
        // Clients on HTTP/1 keep-alive move to another router for their next request.
        response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    Ok(response)
}

async fn inference(state: &Arc<RouterState>, req: Request<Incoming>, kind: ApiKind) -> Response<RouterBody> {
    let plan = state.plan.load_full();
    let mut record = RequestRecord::new(state.next_request_id(), kind.path());
    // Who is calling, and whether their quota admits another request: before the body is read.
    let caller = match plan.tenants.authenticate(req.headers()) {
        Ok(c) => c,
        Err(e) => return fail(state, record, e),
    };
    record.caller = caller.clone();
    if let Some(c) = caller.as_ref().filter(|c| c.tenant.limits.any()) {
        if let Err(e) = admit(state, c).await {
            return fail(state, record, e);
        }
    }
    let (parts, body) = req.into_parts();
    let bytes = match read_body(&parts.headers, body, plan.server.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return fail(state, record, e),
    };
    let started = Instant::now();
    let mut view = match RequestView::parse(kind, &bytes) {
        Ok(v) => v,
        Err(e) => return fail(state, record, e),
    };
    record.stream = view.stream;
    let ctx = RequestContext::from_headers(&parts.headers, caller);
    let decision = match decide(&plan, &view, &ctx).await {
        Ok(d) => d,
        Err(e) => return fail(state, record, e),
    };
    state.observer.signals(&decision);
    rewrite(&plan, &decision, &mut view);
    let upstream_body = view.to_bytes();
    record.routing_us = started.elapsed().as_micros() as u64;
    state.observer.metrics.routing.observe_seconds(started.elapsed().as_secs_f64());
    record.plan = Some(plan.clone());
    let adapter = decision.target.adapter.as_ref().and_then(|a| plan.adapters.get(a));
    let permit = adapter.map(|a| quotas::acquire(&a.active, a.max_concurrency, &a.name)).transpose();
    let shadow = decision.experiment.as_ref().filter(|e| e.shadow).and_then(|e| e.experiment.shadow.as_ref());
    if let Some(s) = shadow.filter(|_| permit.is_ok()) {
        record.shadowed = true;
        shadow::spawn(state, plan.clone(), kind.path(), &parts.headers, &view.body, s, &record.request_id);
    }
    record.decision = Some(decision);
    match permit {
        Ok(p) => record.permit = p.flatten(),
        Err(e) => return fail(state, record, e),
    }
    forward(state, plan, kind.path(), &parts.headers, upstream_body, record).await
}

/// Counts a request against its tenant's limits: 429 over them; 503 when the shared counters
/// cannot be reached and the policy says to refuse (`quotas.on_backend_error: deny`).
async fn admit(state: &RouterState, c: &crate::tenants::Caller) -> Result<(), RouterError> {
    match state.live.store.admit(&c.tenant.name, c.tenant.limits).await {
        Ok(admission) => {
            if let Some(why) = &admission.degraded {
                state.observer.quota_backend_failed(why);
            }
            admission.verdict.error(&c.tenant.name).map_or(Ok(()), Err)
        }
        Err(why) => {
            state.observer.quota_backend_failed(&why.0);
            Err(RouterError::new(
                ErrorKind::QuotaUnavailable,
                format!("The quota service is unavailable ({why}); this router refuses requests it cannot count."),
            ))
        }
    }
}

/// `/v1/models`: with tenants, only what the caller may use (and its own aliases).
fn models(state: &RouterState, headers: &http::HeaderMap) -> Response<RouterBody> {
    let plan = state.plan.load();
    match plan.tenants.authenticate(headers) {
        Ok(caller) => json_value(StatusCode::OK, &model_list(&plan, caller.as_ref().map(|c| &*c.tenant))),
        Err(e) => error_response(&e),
    }
}

/// The decision the data plane would make, without forwarding.
async fn classify(state: &Arc<RouterState>, req: Request<Incoming>) -> Response<RouterBody> {
    let plan = state.plan.load_full();
    let caller = match plan.tenants.authenticate(req.headers()) {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    let (parts, body) = req.into_parts();
    let bytes = match read_body(&parts.headers, body, plan.server.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    let started = Instant::now();
    let view = match RequestView::for_classification(&bytes) {
        Ok(v) => v,
        Err(e) => return error_response(&e),
    };
    match decide(&plan, &view, &RequestContext::from_headers(&parts.headers, caller)).await {
        Ok(d) => {
            let mut v = d.to_json(&plan);
            v["routing_us"] = json!(started.elapsed().as_micros() as u64);
            json_value(StatusCode::OK, &v)
        }
        Err(e) => error_response(&e),
    }
}

/// The router is up (200); each endpoint's health and each external classifier's state.
async fn health(state: &RouterState) -> Response<RouterBody> {
    let plan = state.plan.load_full();
    let endpoints: serde_json::Map<String, serde_json::Value> = state
        .live
        .replicas
        .snapshot()
        .list
        .iter()
        .map(|r| (r.name.to_string(), json!(if r.is_healthy() { "healthy" } else { "unhealthy" })))
        .collect();
    let mut classifiers = serde_json::Map::new();
    for signal in &plan.signals {
        if let Signal::External(x) = signal {
            // A Python classifier's status needs the interpreter: never on an async worker.
            let c = x.classifier().clone();
            let status = tokio::task::spawn_blocking(move || c.status()).await.ok().flatten();
            if let Some(status) = status {
                classifiers.insert(x.name().to_string(), json!(status));
            }
        }
    }
    json_value(StatusCode::OK, &json!({"status": "ok", "endpoints": endpoints, "classifiers": classifiers}))
}

pub async fn read_body(headers: &http::HeaderMap, body: Incoming, limit: usize) -> Result<Bytes, RouterError> {
    let too_large =
        || RouterError::new(ErrorKind::BodyTooLarge, format!("The request body exceeds the limit of {limit} bytes."));
    let declared =
        headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(RouterError::new(ErrorKind::InvalidRequest, format!("Could not read the request body: {e}"))),
    }
}
