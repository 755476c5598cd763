//! The admin API's door: `/admin/...` requests are checked against the admin key here and
//! handed to the handler the Python layer registered (python/lora_router/registry), which
//! owns what they mean. The key comes from the environment variable the config names; with
//! none set the admin API is off.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};

use super::body::RouterBody;
use super::RouterState;
use crate::errors::envelope;
use crate::plan::Plan;
use crate::state::store::Kind;
use crate::state::LiveState;
use crate::tenants::experiments::Experiment;
use crate::util::secret::{bearer, same_bytes};
use serde_json::{json, Value};

pub type AdminFuture = Pin<Box<dyn Future<Output = Result<(u16, String), String>> + Send>>;

/// Answers an admin request: its status and JSON body (an error is an OpenAI-style envelope
/// the handler built).
pub trait AdminHandler: Send + Sync {
    fn handle(&self, method: String, path: String, body: Bytes) -> AdminFuture;
}

fn error(status: StatusCode, message: &str) -> Response<RouterBody> {
    respond(status.as_u16(), envelope(status.as_u16(), message, None))
}

fn respond(status: u16, body: Bytes) -> Response<RouterBody> {
    let mut r = Response::new(RouterBody::full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

/// Passes when the request carries the admin key; else the answer to give.
#[allow(clippy::result_large_err)]
pub fn check_key(plan: &Plan, headers: &HeaderMap) -> Result<(), Response<RouterBody>> {
    let Some(key) = plan.admin_key.as_deref() else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "The admin API is off: set the environment variable that admin.api_key_env names (LORA_ROUTER_ADMIN_KEY by default).",
        ));
    };
    if !bearer(headers).is_some_and(|given| same_bytes(given.as_bytes(), key.as_bytes())) {
        return Err(error(StatusCode::UNAUTHORIZED, "The admin API needs `Authorization: Bearer <admin key>`."));
    }
    Ok(())
}

pub async fn handle(
    state: &RouterState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<RouterBody> {
    let plan = state.plan.load_full();
    if let Err(denied) = check_key(&plan, headers) {
        return denied;
    }
    // Experiments live in the core (their weights and statistics are the data plane's).
    if path == "/admin/experiments" || path.starts_with("/admin/experiments/") {
        return experiments(&plan, &state.live, method, path, &body).await;
    }
    let Some(handler) = state.admin.get() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "The admin API has no handler in this process.");
    };
    match handler.handle(method.to_string(), path.to_string(), body).await {
        Ok((status, json)) => respond(status, Bytes::from(json)),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("The admin handler failed: {e}")),
    }
}

/// `GET /admin/experiments` (each experiment, its arms, weights and statistics, summed over
/// every router sharing the store) and `PATCH /admin/experiments/{name}` `{"weights":
/// {"<adapter>": w, ...}}` (arms not named keep their weight; the new weights reach every
/// router sharing the store, and hold while the config's weights for the experiment stay as
/// they are).
async fn experiments(plan: &Plan, live: &LiveState, method: &Method, path: &str, body: &[u8]) -> Response<RouterBody> {
    let name = path.strip_prefix("/admin/experiments").unwrap_or("").trim_matches('/');
    match (method, name) {
        (&Method::GET, "") => {
            let mut data = Vec::new();
            for e in &plan.experiments {
                data.push(described(plan, live, e).await);
            }
            ok(&json!({"object": "list", "data": data}))
        }
        (&Method::GET, n) => match plan.experiments.iter().find(|e| &*e.name == n) {
            Some(e) => ok(&described(plan, live, e).await),
            None => error(StatusCode::NOT_FOUND, &format!("No experiment named '{n}'.")),
        },
        (&Method::PATCH | &Method::PUT, n) if !n.is_empty() => {
            let Some(e) = plan.experiments.iter().find(|e| &*e.name == n) else {
                return error(StatusCode::NOT_FOUND, &format!("No experiment named '{n}'."));
            };
            let parsed: Result<Value, _> = serde_json::from_slice(body);
            let Some(given) = parsed.ok().and_then(|v| v.get("weights").and_then(Value::as_object).cloned()) else {
                return error(StatusCode::BAD_REQUEST, "Send {\"weights\": {\"<adapter>\": <weight>, ...}}.");
            };
            let mut weights = e.weights();
            for (adapter, w) in &given {
                let Some(i) = e.arms.iter().position(|a| &*a.adapter == adapter) else {
                    return error(StatusCode::BAD_REQUEST, &format!("'{adapter}' is not an arm of '{n}'."));
                };
                let Some(w) = w.as_f64() else {
                    return error(StatusCode::BAD_REQUEST, &format!("The weight of '{adapter}' must be a number."));
                };
                weights[i] = w;
            }
            let over = match e.weight_override(&weights) {
                Ok(o) => o,
                Err(m) => return error(StatusCode::BAD_REQUEST, &m),
            };
            let value = serde_json::to_string(&over).unwrap_or_default();
            if let Err(why) = live.store.put(Kind::Experiments, n, &value).await {
                return unavailable(&why.0);
            }
            e.live.weights.store(Some(std::sync::Arc::new(over)));
            ok(&described(plan, live, e).await)
        }
        (m, _) => error(StatusCode::METHOD_NOT_ALLOWED, &format!("Method {m} is not allowed on {path}.")),
    }
}

/// An experiment with the statistics of every router sharing the store (this router's
/// newest counts sent first), or this router's own while the store cannot be reached.
async fn described(plan: &Plan, live: &LiveState, e: &Experiment) -> Value {
    let _ = live.flush_stats().await;
    let (totals, scope) = match live.store.counts(&e.name).await {
        Ok(totals) => (totals, format!("every router sharing the {} store", live.store.backend())),
        Err(why) => (e.local_counts(), format!("this router only: the store is unavailable ({why})")),
    };
    let mut v = e.to_json(&plan.categories, &totals);
    v["statistics_from"] = json!(scope);
    v
}

/// The shared state cannot be reached: the change was not made.
fn unavailable(why: &str) -> Response<RouterBody> {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("The shared state store is unavailable ({why}); nothing was changed. Retry once it is back."),
    )
}

fn ok(v: &Value) -> Response<RouterBody> {
    respond(200, Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
}
