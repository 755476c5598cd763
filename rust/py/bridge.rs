//! Calling Python from the data plane without blocking it. Every step that needs the
//! interpreter (calling the function, creating the coroutine, reading the result) runs on a
//! blocking thread, which holds the GIL only while Python runs; a coroutine runs on the
//! asyncio loop the Python layer started (python/lora_router/plugins/loop.py), bridged with
//! pyo3-async-runtimes. No tokio worker ever waits for the GIL.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

/// `ExceptionType: message`.
pub fn describe(py: Python<'_>, e: PyErr) -> String {
    let name = e.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".into());
    format!("{name}: {}", e.value(py))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(|e| format!("Python call thread failed: {e}"))?
}

/// A Python callable the core calls: a plain function, or (with `locals`) a coroutine
/// function run on that event loop.
pub struct PyCallable {
    entry: Arc<Py<PyAny>>,
    locals: Option<Arc<TaskLocals>>,
}

impl PyCallable {
    pub fn new(entry: Py<PyAny>, locals: Option<Arc<TaskLocals>>) -> Self {
        PyCallable { entry: Arc::new(entry), locals }
    }

    /// Calls it with `args` and reads the result with `read` (under the GIL, off the workers).
    pub async fn call<A, T>(
        &self,
        args: A,
        read: fn(Python<'_>, &Bound<'_, PyAny>) -> Result<T, String>,
    ) -> Result<T, String>
    where
        A: for<'py> pyo3::call::PyCallArgs<'py> + Send + 'static,
        T: Send + 'static,
    {
        let entry = self.entry.clone();
        let Some(locals) = self.locals.clone() else {
            return blocking(move || {
                Python::attach(|py| {
                    let out = entry.call1(py, args).map_err(|e| describe(py, e))?;
                    read(py, out.bind(py))
                })
            })
            .await;
        };
        let pending = blocking(move || {
            Python::attach(|py| {
                let coroutine = entry.call1(py, args).map_err(|e| describe(py, e))?;
                pyo3_async_runtimes::into_future_with_locals(&locals, coroutine.into_bound(py))
                    .map_err(|e| describe(py, e))
            })
        })
        .await?;
        let outcome = pending.await;
        blocking(move || {
            Python::attach(|py| match outcome {
                Ok(value) => read(py, value.bind(py)),
                Err(e) => Err(describe(py, e)),
            })
        })
        .await
    }

    /// Calls it without arguments, on the current thread (for cheap, synchronous callables
    /// such as a status; call from a blocking thread).
    pub fn call0_blocking<T: for<'a, 'py> FromPyObject<'a, 'py>>(&self) -> Option<T> {
        Python::attach(|py| self.entry.call0(py).ok()?.extract::<T>(py).ok())
    }
}
