//! Whether this router should get traffic, and how it leaves.
//!
//! `/livez`: the process answers (it never touches a replica or the store). `/readyz`: the
//! plan is loaded, the run-time state has been read from the store at least once, some
//! replica is healthy, the store is reachable where quotas need it (`on_backend_error:
//! deny`), and the router is not draining. On SIGTERM the Python layer calls `begin_drain`:
//! `/readyz` answers 503 at once while requests are still served (and HTTP/1 responses say
//! `connection: close`, so clients move on); then the server stops accepting and waits for
//! requests in flight. When the drain time runs out, `ending` fires: streams still open end
//! with a final error event and `[DONE]` instead of being cut (proxy/body.rs).

use std::sync::atomic::{AtomicBool, Ordering};

use http::{Response, StatusCode};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::body::RouterBody;
use super::responses::json_value;
use super::RouterState;
use crate::plan::StoreErrorPolicy;

#[derive(Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    /// Fires when the drain time has run out.
    pub ending: CancellationToken,
}

impl Lifecycle {
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

pub fn livez() -> Response<RouterBody> {
    json_value(StatusCode::OK, &json!({"status": "alive"}))
}

/// Each readiness condition and whether it holds now.
pub fn checks(state: &RouterState) -> Vec<(&'static str, bool, String)> {
    let live = &state.live;
    let set = live.replicas.snapshot();
    let healthy = set.list.iter().filter(|r| r.is_healthy()).count();
    let plan = state.plan.load();
    let store_needed = plan.store.redis.as_ref().is_some_and(|r| r.on_error == StoreErrorPolicy::Deny);
    let reachable = live.store.reachable();
    vec![
        (
            "draining",
            !state.lifecycle.draining(),
            if state.lifecycle.draining() { "draining" } else { "serving" }.into(),
        ),
        ("replicas", healthy > 0, format!("{healthy} of {} healthy", set.list.len())),
        ("state", live.synced(), if live.synced() { "read" } else { "not read from the store yet" }.into()),
        (
            "store",
            reachable || !store_needed,
            format!(
                "{} {}{}",
                live.store.backend(),
                if reachable { "reachable" } else { "unreachable" },
                if store_needed { " (required: quotas.on_backend_error is deny)" } else { "" }
            ),
        ),
    ]
}

pub fn ready(state: &RouterState) -> bool {
    checks(state).iter().all(|(_, ok, _)| *ok)
}

pub fn readyz(state: &RouterState) -> Response<RouterBody> {
    let checks = checks(state);
    let ok = checks.iter().all(|(_, ok, _)| *ok);
    let detail: serde_json::Map<String, serde_json::Value> =
        checks.into_iter().map(|(name, ok, why)| (name.to_string(), json!({"ok": ok, "detail": why}))).collect();
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json_value(status, &json!({"status": if ok { "ready" } else { "not ready" }, "checks": detail}))
}
