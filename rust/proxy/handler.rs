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
use super::responses::{error_response, json_value, model_list};
use super::RouterState;
use crate::decision::{decide, rewrite, RequestContext};
use crate::errors::{ErrorKind, RouterError};
use crate::observe::RequestRecord;
use crate::request::{ApiKind, RequestView};
use crate::signals::Signal;

const KNOWN_PATHS: &[&str] =
    &["/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/classify", "/health", "/metrics"];

pub async fn handle(state: Arc<RouterState>, req: Request<Incoming>) -> Result<Response<RouterBody>, Infallible> {
    let response = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/chat/completions") => inference(&state, req, ApiKind::Chat).await,
        (&Method::POST, "/v1/completions") => inference(&state, req, ApiKind::Completions).await,
        (&Method::POST, "/v1/classify") => classify(&state, req).await,
        (&Method::GET, "/v1/models") => json_value(StatusCode::OK, &model_list(&state.plan.load())),
        (&Method::GET, "/health") => health(&state).await,
        (&Method::GET, "/metrics") => {
            let mut r = Response::new(RouterBody::full(state.observer.metrics.render(&state.plan.load())));
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
    Ok(response)
}

async fn inference(state: &Arc<RouterState>, req: Request<Incoming>, kind: ApiKind) -> Response<RouterBody> {
    let plan = state.plan.load_full();
    let mut record = RequestRecord::new(state.next_request_id(), kind.path());
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
    let ctx = RequestContext::from_headers(&parts.headers);
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
    record.decision = Some(decision);
    forward(state, plan, kind.path(), &parts.headers, upstream_body, record).await
}

/// The decision the data plane would make, without forwarding.
async fn classify(state: &Arc<RouterState>, req: Request<Incoming>) -> Response<RouterBody> {
    let plan = state.plan.load_full();
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
    match decide(&plan, &view, &RequestContext::from_headers(&parts.headers)).await {
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
    let endpoints: serde_json::Map<String, serde_json::Value> = plan
        .endpoints
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
