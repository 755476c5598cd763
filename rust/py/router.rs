//! `Router`: a compiled plan, and the server that runs it. The HTTP server lives on the
//! native runtime; `start` returns at once and `stop` drains. Python never waits on the GIL
//! for the data plane.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

use super::admin::{self, PyAdmin};
use super::classifier::PyClassifier;
use super::plan_error;
use super::store::{self, PyRecords};
use crate::decision::{decide, RequestContext};
use crate::errors::RouterError;
use crate::plan::{Plan, PlanError, PlanSpec};
use crate::proxy::admin::AdminHandler;
use crate::proxy::{handler, RouterState};
use crate::replicas::{discovery, health};
use crate::request::RequestView;
use crate::server::{self, ServerHandle};
use crate::signals::{ExternalClassifier, Externals};
use crate::state::{self, LiveState};

/// `{name: (entry, is_async, status)}`: the classifiers the Python layer registers.
type PyClassifiers = HashMap<String, (Py<PyAny>, bool, Option<Py<PyAny>>)>;

/// The Python layer's classifiers into the core's registry.
fn externals(classifiers: Option<PyClassifiers>, locals: Option<Arc<TaskLocals>>) -> PyResult<Externals> {
    let mut out = Externals::new();
    let Some(classifiers) = classifiers else { return Ok(out) };
    for (name, (entry, is_async, status)) in classifiers {
        if is_async && locals.is_none() {
            return Err(PyRuntimeError::new_err(format!("classifier '{name}' is async but no event loop was given")));
        }
        let c: Arc<dyn ExternalClassifier> =
            Arc::new(PyClassifier::new(entry, status, if is_async { locals.clone() } else { None }));
        out.insert(name, c);
    }
    Ok(out)
}

struct Running {
    server: ServerHandle,
    /// Stops the background loops (health, discovery, the store's sync).
    loops_stop: tokio::sync::watch::Sender<bool>,
}

#[pyclass(name = "Router", module = "lora_router._native", frozen)]
pub struct PyRouter {
    state: Arc<RouterState>,
    threads: usize,
    running: Mutex<Option<Running>>,
}

#[pymethods]
impl PyRouter {
    #[new]
    #[pyo3(signature = (plan_json, threads = 0, classifiers = None, event_loop = None, admin = None, records = None))]
    fn new(
        py: Python<'_>,
        plan_json: &str,
        threads: usize,
        classifiers: Option<PyClassifiers>,
        event_loop: Option<Py<PyAny>>,
        admin: Option<Py<PyAny>>,
        records: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let locals = match &event_loop {
            Some(l) => Some(Arc::new(TaskLocals::new(l.clone_ref(py).into_bound(py)).copy_context(py)?)),
            None => None,
        };
        let externals = externals(classifiers, locals.clone())?;
        let spec: PlanSpec =
            serde_json::from_str(plan_json).map_err(|e| plan_error(PlanError::new("plan", e.to_string())))?;
        let live = LiveState::from_spec(&spec.store).map_err(|m| plan_error(PlanError::new("store.redis", m)))?;
        // Building a plan can embed category examples: let other Python threads run meanwhile.
        let plan = py.detach(|| Plan::compile(spec, &live, &externals)).map_err(plan_error)?;
        let state = RouterState::new(plan, live).map_err(plan_error)?;
        let needs_loop = || PyRuntimeError::new_err("the admin and records handlers need an event loop");
        if let Some(entry) = admin {
            let handler: Arc<dyn AdminHandler> = Arc::new(PyAdmin::new(entry, locals.clone().ok_or_else(needs_loop)?));
            let _ = state.admin.set(handler);
        }
        if let Some(entry) = records {
            state.live.set_sink(Arc::new(PyRecords::new(entry, locals.ok_or_else(needs_loop)?)));
        }
        Ok(PyRouter { state, threads, running: Mutex::new(None) })
    }

    /// Compiles a new plan and swaps it in; requests in flight keep the old one.
    #[pyo3(signature = (plan_json, classifiers = None, event_loop = None))]
    fn reload(
        &self,
        py: Python<'_>,
        plan_json: &str,
        classifiers: Option<PyClassifiers>,
        event_loop: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let locals = match event_loop {
            Some(l) => Some(Arc::new(TaskLocals::new(l.into_bound(py)).copy_context(py)?)),
            None => None,
        };
        let externals = externals(classifiers, locals)?;
        let state = self.state.clone();
        py.detach(|| state.reload(plan_json, &externals)).map_err(plan_error)
    }

    /// Every replica as the router sees it (health, load, adapters served, modelled slots), as JSON.
    fn replicas(&self) -> String {
        let set = self.state.live.replicas.snapshot();
        serde_json::Value::Array(set.list.iter().map(|r| r.to_json()).collect()).to_string()
    }

    /// Every run-time record of a kind (`adapters`, `tenants`, `experiments`) in the shared
    /// store, as `(name, value)`. Raises `StoreUnavailable`.
    fn store_all(&self, py: Python<'_>, kind: &str) -> PyResult<Vec<(String, String)>> {
        let kind = store::kind(kind)?;
        store::blocking(py, &self.state.live, async move |live| live.store.all(kind).await)
    }

    /// Replaces a record only if it still holds `expected` (`None`: that there is none);
    /// `value` `None` deletes it. False: it changed meanwhile and nothing was written.
    /// Raises `StoreUnavailable`.
    #[pyo3(signature = (kind, name, expected, value))]
    fn store_swap(
        &self,
        py: Python<'_>,
        kind: &str,
        name: &str,
        expected: Option<&str>,
        value: Option<&str>,
    ) -> PyResult<bool> {
        let kind = store::kind(kind)?;
        store::blocking(py, &self.state.live, async move |live| live.store.swap(kind, name, expected, value).await)
    }

    /// Loads an adapter on an endpoint through vLLM's API; true if loaded now, false if it
    /// already served it from that path. Raises `AdapterError(status, message)`.
    fn load_adapter(&self, py: Python<'_>, endpoint: &str, served: &str, path: &str, timeout_s: f64) -> PyResult<bool> {
        admin::load(py, &self.state, endpoint, served, path, timeout_s)
    }

    /// Unloads an adapter from an endpoint (one it does not serve counts as unloaded).
    fn unload_adapter(&self, py: Python<'_>, endpoint: &str, served: &str, timeout_s: f64) -> PyResult<()> {
        admin::unload(py, &self.state, endpoint, served, timeout_s)
    }

    /// The endpoints of `base` in `adapter`'s home (placement) order.
    fn home_order(&self, adapter: &str, base: &str) -> PyResult<Vec<String>> {
        admin::home_order(&self.state, adapter, base)
    }

    /// The decision for a `{"text": ...}` or `{"messages": [...]}` request, as JSON.
    #[pyo3(signature = (request_json, headers = None, tenant = None))]
    fn classify(
        &self,
        py: Python<'_>,
        request_json: &str,
        headers: Option<Vec<(String, String)>>,
        tenant: Option<String>,
    ) -> PyResult<String> {
        let state = self.state.clone();
        let rt = server::runtime(self.threads);
        let bytes = request_json.as_bytes().to_vec();
        let ctx = RequestContext::from_pairs(&state.plan.load(), headers.unwrap_or_default(), tenant.as_deref())
            .map_err(pyo3::exceptions::PyValueError::new_err)?;
        let result: Result<String, RouterError> = py.detach(move || {
            rt.block_on(async move {
                let plan = state.plan.load_full();
                let started = std::time::Instant::now();
                let view = RequestView::for_classification(&bytes)?;
                let d = decide(&plan, &view, &ctx).await?;
                let mut v = d.to_json(&plan);
                v["routing_us"] = serde_json::json!(started.elapsed().as_micros() as u64);
                Ok(v.to_string())
            })
        });
        result.map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
    }

    /// Starts serving on host:port (port 0 picks a free one); returns the bound address.
    fn start(&self, py: Python<'_>, host: &str, port: u16) -> PyResult<(String, u16)> {
        let mut running = self.running.lock().map_err(|_| PyRuntimeError::new_err("router state poisoned"))?;
        if running.is_some() {
            return Err(PyRuntimeError::new_err("the router is already serving"));
        }
        let addr = server::resolve(host, port).map_err(|e| PyOSError::new_err(e.to_string()))?;
        let rt = server::runtime(self.threads);
        let state = self.state.clone();
        let handle = py
            .detach(|| {
                let s = state.clone();
                let ending = s.lifecycle.ending.clone();
                server::spawn(rt, addr, move |req| handler::handle(s.clone(), req), ending)
            })
            .map_err(|e| PyOSError::new_err(format!("cannot listen on {addr}: {e}")))?;
        let (loops_stop, stop_rx) = tokio::sync::watch::channel(false);
        rt.spawn(health::run(state.clone(), stop_rx.clone()));
        rt.spawn(discovery::run(state.clone(), stop_rx.clone()));
        rt.spawn(state::run(state.live.clone(), stop_rx));
        let local = handle.local_addr;
        *running = Some(Running { server: handle, loops_stop });
        Ok((local.ip().to_string(), local.port()))
    }

    /// Starts draining: `/readyz` answers 503 at once, requests are still served.
    fn begin_drain(&self) {
        self.state.lifecycle.begin_drain();
    }

    /// Whether the router is ready for traffic (what `/readyz` answers).
    fn ready(&self) -> bool {
        crate::proxy::lifecycle::ready(&self.state)
    }

    /// Stops accepting, waits for in-flight requests (up to the drain timeout; streams still
    /// open then end with a final error event), flushes the audit log.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.running.lock().map_err(|_| PyRuntimeError::new_err("router state poisoned"))?.take();
        if let Some(r) = taken {
            // The drain time of the config running now (a reload may have changed it). Health
            // checks and the store's sync go on while requests drain.
            let drain = Duration::from_millis(self.state.plan.load().server.drain_timeout_ms);
            py.detach(move || r.server.stop(drain));
            let _ = r.loops_stop.send(true);
        }
        self.state.observer.close();
        Ok(())
    }

    /// The Prometheus text `/metrics` serves.
    fn metrics(&self) -> String {
        self.state.observer.metrics.render(&self.state.plan.load(), &self.state.live)
    }

    /// The bound address while serving.
    #[getter]
    fn address(&self) -> Option<(String, u16)> {
        let running = self.running.lock().ok()?;
        running.as_ref().map(|r| (r.server.local_addr.ip().to_string(), r.server.local_addr.port()))
    }
}
