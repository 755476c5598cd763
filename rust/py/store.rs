//! The shared state store as the Python layer sees it: the registry and the tenant store
//! write their run-time records through it (`store_put`, `store_delete`, `store_all` on
//! `Router`), and hear of other routers' changes through the handler they register
//! (`PyRecords`, called on the plugins' event loop).

use std::sync::Arc;

use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

use super::bridge::PyCallable;
use crate::server;
use crate::state::store::{Kind, Unavailable};
use crate::state::{LiveState, RecordSink, SinkFuture};

create_exception!(
    lora_router._native,
    StoreUnavailablePy,
    PyRuntimeError,
    "The shared state store (Redis) cannot be reached: nothing was read or written."
);

/// The Python handler `handler(kind, records, complete)`, a coroutine: with a list of
/// `(name, value or None)` it applies them; with `records = None` it returns every record of
/// the kind it holds, as `[(name, value)]`.
pub struct PyRecords(Arc<PyCallable>);

impl PyRecords {
    pub fn new(entry: Py<PyAny>, locals: Arc<TaskLocals>) -> Self {
        PyRecords(Arc::new(PyCallable::new(entry, Some(locals))))
    }
}

impl RecordSink for PyRecords {
    fn apply(&self, kind: Kind, records: Vec<(String, Option<String>)>, complete: bool) -> SinkFuture {
        let entry = self.0.clone();
        Box::pin(async move { entry.call((kind.name(), Some(records), complete), |_, _| Ok(())).await })
    }

    fn records(&self, kind: Kind) -> SinkFuture<Vec<(String, String)>> {
        let entry = self.0.clone();
        let read = |py: Python<'_>, v: &Bound<'_, PyAny>| {
            v.extract::<Vec<(String, String)>>().map_err(|e| super::bridge::describe(py, e))
        };
        Box::pin(async move { entry.call((kind.name(), None::<Vec<(String, Option<String>)>>, true), read).await })
    }
}

pub fn kind(name: &str) -> PyResult<Kind> {
    Kind::parse(name).ok_or_else(|| PyValueError::new_err(format!("unknown record kind '{name}'")))
}

fn unavailable(Unavailable(why): Unavailable) -> PyErr {
    StoreUnavailablePy::new_err(why)
}

/// Runs a store operation on the native runtime, without the GIL.
pub fn blocking<T: Send>(
    py: Python<'_>,
    live: &Arc<LiveState>,
    op: impl AsyncFnOnce(&LiveState) -> Result<T, Unavailable> + Send,
) -> PyResult<T> {
    let live = live.clone();
    py.detach(|| server::runtime(0).block_on(async move { op(&live).await })).map_err(unavailable)
}
