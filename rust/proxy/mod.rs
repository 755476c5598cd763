//! The data plane: the router's shared state and its HTTP handlers.
//!
//! `handler.rs` reads top to bottom as the request path: read body, parse, decide, rewrite,
//! forward (`forward.rs`, with the one retry rule), respond with decision headers, record.

pub mod admin;
pub mod body;
pub mod forward;
pub mod handler;
pub mod lifecycle;
pub mod responses;
pub mod shadow;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::observe::Observer;
use crate::plan::{Plan, PlanError};
use crate::replicas::discovery;
use crate::signals::Externals;
use crate::state::LiveState;
use crate::util::rng;
use admin::AdminHandler;

pub type UpstreamClient = Client<HttpConnector, Full<Bytes>>;

pub struct RouterState {
    pub plan: ArcSwap<Plan>,
    /// What changes while the router runs: replicas, counters, run-time records.
    pub live: Arc<LiveState>,
    pub client: UpstreamClient,
    pub observer: Arc<Observer>,
    /// The admin API's handler, registered by the Python layer.
    pub admin: OnceLock<Arc<dyn AdminHandler>>,
    pub lifecycle: lifecycle::Lifecycle,
    ids: RequestIds,
}

impl RouterState {
    /// The state of a router serving `plan`, compiled against `live`; the plan's configured
    /// endpoints become its replicas.
    pub fn new(plan: Plan, live: Arc<LiveState>) -> Result<Arc<RouterState>, PlanError> {
        let observer = Observer::new(plan.audit_path.as_deref(), live.clone())
            .map_err(|e| PlanError::new("audit.path", format!("cannot open the audit log: {e}")))?;
        discovery::apply_plan(&plan, &live)?;
        let client = build_client(Duration::from_millis(plan.server.connect_timeout_ms));
        Ok(Arc::new(RouterState {
            plan: ArcSwap::from_pointee(plan),
            live,
            client,
            observer: Arc::new(observer),
            admin: OnceLock::new(),
            lifecycle: Default::default(),
            ids: RequestIds::new(),
        }))
    }

    /// Compiles a new plan against the live state and swaps it in (replicas of unchanged
    /// endpoints carry over). Requests in flight finish on the plan they started with.
    pub fn reload(&self, plan_json: &str, externals: &Externals) -> Result<(), PlanError> {
        let next = Plan::from_json_with(plan_json, &self.live, externals)?;
        self.observer
            .set_audit_path(next.audit_path.as_deref())
            .map_err(|e| PlanError::new("audit.path", format!("cannot open the audit log: {e}")))?;
        discovery::apply_plan(&next, &self.live)?;
        self.plan.store(Arc::new(next));
        Ok(())
    }

    pub fn next_request_id(&self) -> Arc<str> {
        self.ids.next()
    }
}

fn build_client(connect_timeout: Duration) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(1024)
        // Only retried by hyper when the pooled connection was closed before the request was
        // written, so nothing reached the upstream.
        .retry_canceled_requests(true)
        .build(connector)
}

/// `lr-<process prefix><counter>`: unique per process, cheap, sortable within a process.
struct RequestIds {
    prefix: String,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        RequestIds { prefix: format!("lr-{:08x}", rng::next_u64() as u32), counter: AtomicU64::new(0) }
    }

    fn next(&self) -> Arc<str> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        Arc::from(format!("{}{:08x}", self.prefix, n))
    }
}
