//! The admin API handler the Python layer registers (python/lora_router/registry/admin.py),
//! and the adapter operations it calls back into the core for: the replicas' state, loads and
//! unloads through replicas/vllm.rs, and the placement order.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

use super::bridge::{describe, PyCallable};
use crate::plan::ModelRef;
use crate::proxy::admin::{AdminFuture, AdminHandler};
use crate::proxy::RouterState;
use crate::replicas::select::{self, View};
use crate::replicas::{ondemand, vllm, Replica};
use crate::server;

create_exception!(
    lora_router._native,
    AdapterErrorPy,
    PyRuntimeError,
    "A replica did not load or unload an adapter: args are (status, message); status 0 means unreachable, 404 with runtime updates off."
);

pub struct PyAdmin(Arc<PyCallable>);

impl PyAdmin {
    pub fn new(entry: Py<PyAny>, locals: Arc<TaskLocals>) -> Self {
        PyAdmin(Arc::new(PyCallable::new(entry, Some(locals))))
    }
}

fn reply(py: Python<'_>, v: &Bound<'_, PyAny>) -> Result<(u16, String), String> {
    v.extract::<(u16, String)>().map_err(|e| describe(py, e))
}

impl AdminHandler for PyAdmin {
    fn handle(&self, method: String, path: String, body: Bytes) -> AdminFuture {
        let entry = self.0.clone();
        Box::pin(async move { entry.call((method, path, body.to_vec()), reply).await })
    }
}

fn replica(state: &RouterState, name: &str) -> PyResult<Arc<Replica>> {
    state
        .live
        .replicas
        .snapshot()
        .find(name)
        .cloned()
        .ok_or_else(|| PyValueError::new_err(format!("unknown replica '{name}'")))
}

fn adapter_error(e: vllm::AdapterError) -> PyErr {
    let (status, message) = match &e {
        vllm::AdapterError::RuntimeUpdatesOff => (404, e.to_string()),
        vllm::AdapterError::Replica { status, message } => (*status, message.clone()),
        vllm::AdapterError::Unreachable(m) => (0, m.clone()),
    };
    AdapterErrorPy::new_err((status, message))
}

/// Loads `served` from `path` on `endpoint`; true if loaded now, false if it already was.
pub fn load(
    py: Python<'_>,
    state: &Arc<RouterState>,
    endpoint: &str,
    served: &str,
    path: &str,
    timeout_s: f64,
) -> PyResult<bool> {
    let r = replica(state, endpoint)?;
    let state = state.clone();
    let timeout = Duration::from_secs_f64(timeout_s.max(0.001));
    let served: Arc<str> = Arc::from(served);
    let out = py.detach(|| {
        server::runtime(0)
            .block_on(async { ondemand::load_once(&state.client, &state.live, &r, &served, path, timeout).await })
    });
    out.map(|l| l == vllm::Loaded::Now).map_err(adapter_error)
}

pub fn unload(py: Python<'_>, state: &Arc<RouterState>, endpoint: &str, served: &str, timeout_s: f64) -> PyResult<()> {
    let r = replica(state, endpoint)?;
    let state = state.clone();
    let timeout = Duration::from_secs_f64(timeout_s.max(0.001));
    py.detach(|| server::runtime(0).block_on(async { vllm::unload(&state.client, &r, served, timeout).await }))
        .map_err(adapter_error)
}

/// The replicas of `base` in `adapter`'s home order.
pub fn home_order(state: &RouterState, adapter: &str, base: &str) -> PyResult<Vec<String>> {
    let plan = state.plan.load();
    let Some(ModelRef::Base(b)) = plan.models.get(base) else {
        return Err(PyValueError::new_err(format!("'{base}' is not a base model")));
    };
    let set = state.live.replicas.snapshot();
    let members = View { plan: &plan, set: &set, live: &state.live }.members(*b);
    Ok(select::home_order(&set, &members, adapter).into_iter().map(|i| set.list[i].name.to_string()).collect())
}
