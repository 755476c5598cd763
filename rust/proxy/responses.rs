//! Bodies and headers the router writes itself: JSON answers, OpenAI errors, the model list,
//! and the decision headers that go on every routed response.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};
use serde_json::{json, Value};

use super::body::RouterBody;
use crate::errors::RouterError;
use crate::observe::RequestRecord;
use crate::plan::{ModelRef, Plan};
use crate::tenants::Tenant;
use crate::util::time::unix_seconds;

pub const H_CATEGORY: HeaderName = HeaderName::from_static("x-lora-router-category");
pub const H_ADAPTER: HeaderName = HeaderName::from_static("x-lora-router-adapter");
pub const H_MODEL: HeaderName = HeaderName::from_static("x-lora-router-model");
pub const H_BACKEND: HeaderName = HeaderName::from_static("x-lora-router-backend");
pub const H_CLASSIFIER: HeaderName = HeaderName::from_static("x-lora-router-classifier");
pub const H_CONFIDENCE: HeaderName = HeaderName::from_static("x-lora-router-confidence");
pub const H_ROUTING_US: HeaderName = HeaderName::from_static("x-lora-router-routing-us");
pub const H_REQUEST_ID: HeaderName = HeaderName::from_static("x-lora-router-request-id");
pub const H_TRUNCATED: HeaderName = HeaderName::from_static("x-lora-router-truncated");
pub const H_EXPERIMENT: HeaderName = HeaderName::from_static("x-lora-router-experiment");

pub fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<RouterBody> {
    let mut r = Response::new(RouterBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub fn json_value(status: StatusCode, v: &Value) -> Response<RouterBody> {
    json_response(status, serde_json::to_vec(v).unwrap_or_default())
}

pub fn error_response(e: &RouterError) -> Response<RouterBody> {
    let mut r = json_response(e.status(), e.body());
    if let Some(secs) = e.retry_after {
        r.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

/// Writes what the router decided onto a response. Header values come from the plan or from
/// numbers, so they are always valid; anything that is not is left out.
pub fn decision_headers(headers: &mut HeaderMap, record: &RequestRecord) {
    if let Ok(v) = HeaderValue::from_str(&record.request_id) {
        headers.insert(H_REQUEST_ID, v);
    }
    let (Some(plan), Some(d)) = (&record.plan, &record.decision) else {
        return;
    };
    let mut put = |name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    put(H_CATEGORY, d.category_name(plan));
    put(H_ADAPTER, d.adapter());
    put(H_MODEL, plan.upstream_model(&d.target));
    put(H_CLASSIFIER, d.classifier.name());
    put(H_CONFIDENCE, &format!("{:.3}", d.confidence));
    put(H_ROUTING_US, &record.routing_us.to_string());
    if d.truncated() {
        put(H_TRUNCATED, "true");
    }
    if let Some(e) = &d.experiment {
        put(H_EXPERIMENT, &e.label());
    }
    if let Some(b) = &record.backend {
        put(H_BACKEND, b);
    }
}

/// `/v1/models` in vLLM's shape: the router's virtual model, then each base model, then
/// each adapter with `parent` naming its base. For a tenant: only what it may use, then its
/// aliases (with `root` naming what they stand for); the virtual model only with intent
/// routing.
pub fn model_list(plan: &Plan, tenant: Option<&Tenant>) -> Value {
    let created = unix_seconds();
    let card = |id: &str, root: &str, parent: Option<&str>| {
        json!({"id": id, "object": "model", "created": created, "owned_by": "lora-router",
               "root": root, "parent": parent, "max_model_len": null, "permission": []})
    };
    let may_use = |r: &ModelRef| tenant.is_none_or(|t| t.may_use(r));
    let mut data = Vec::new();
    if tenant.is_none_or(|t| t.intent_routing) {
        data.push(card(&plan.router_model_name, &plan.router_model_name, None));
    }
    for (bi, b) in plan.bases.iter().enumerate() {
        if may_use(&ModelRef::Base(bi)) {
            data.push(card(&b.name, &b.name, None));
        }
    }
    for b in &plan.bases {
        for a in &b.adapters {
            if matches!(plan.models.get(&**a), Some(r @ ModelRef::Adapter { .. }) if may_use(r)) {
                data.push(card(a, a, Some(&b.name)));
            }
        }
    }
    if let Some(t) = tenant {
        let mut aliases: Vec<_> = t.aliases.iter().collect();
        aliases.sort_by(|a, b| a.0.cmp(b.0));
        for (alias, r) in aliases {
            match r {
                ModelRef::Base(b) => data.push(card(alias, &plan.bases[*b].name, None)),
                ModelRef::Adapter { base, name } => data.push(card(alias, name, Some(&plan.bases[*base].name))),
            }
        }
    }
    json!({"object": "list", "data": data})
}
