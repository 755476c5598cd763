//! Python classifiers behind the core's `ExternalClassifier`. Every step that needs the
//! interpreter (calling the function, creating the coroutine, reading the answer) runs on a
//! blocking thread, which holds the GIL only while Python runs; async classifiers run on the
//! asyncio loop the Python layer started (python/lora_router/plugins/loop.py), bridged with
//! pyo3-async-runtimes. No tokio worker ever waits for the GIL.
//!
//! The callable receives `(text, messages_json, headers, tenant)` and returns `None` or a
//! `(category, confidence, model, system_prompt, use_reasoning)` tuple: the Python layer
//! (python/lora_router/classifier.py) wraps the user's function so this shape always holds.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

use crate::signals::{ExternalAnswer, ExternalClassifier, ExternalFuture, ExternalInput};

type Answer = Option<(String, f64, Option<String>, Option<String>, Option<bool>)>;

pub struct PyClassifier {
    entry: Arc<Py<PyAny>>,
    status: Option<Arc<Py<PyAny>>>,
    /// The asyncio loop, for coroutine functions; `None` for plain functions.
    locals: Option<Arc<TaskLocals>>,
}

impl PyClassifier {
    pub fn new(entry: Py<PyAny>, status: Option<Py<PyAny>>, locals: Option<Arc<TaskLocals>>) -> Self {
        PyClassifier { entry: Arc::new(entry), status: status.map(Arc::new), locals }
    }
}

fn describe(py: Python<'_>, e: PyErr) -> String {
    let name = e.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".into());
    format!("{name}: {}", e.value(py))
}

fn answer(py: Python<'_>, value: &Bound<'_, PyAny>) -> Result<Option<ExternalAnswer>, String> {
    let a: Answer = value.extract().map_err(|e| describe(py, e))?;
    Ok(a.map(|(category, confidence, model, system_prompt, use_reasoning)| ExternalAnswer {
        category,
        confidence: confidence as f32,
        model,
        system_prompt,
        use_reasoning,
    }))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(|e| format!("classifier thread failed: {e}"))?
}

impl ExternalClassifier for PyClassifier {
    fn classify(&self, input: ExternalInput) -> ExternalFuture {
        let entry = self.entry.clone();
        let locals = self.locals.clone();
        Box::pin(async move {
            let args = (input.text, input.messages_json, input.headers, input.tenant);
            let Some(locals) = locals else {
                return blocking(move || {
                    Python::attach(|py| {
                        let out = entry.call1(py, args).map_err(|e| describe(py, e))?;
                        answer(py, out.bind(py))
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
                    Ok(value) => answer(py, value.bind(py)),
                    Err(e) => Err(describe(py, e)),
                })
            })
            .await
        })
    }

    fn status(&self) -> Option<String> {
        let status = self.status.as_ref()?;
        Python::attach(|py| status.call0(py).ok()?.extract::<String>(py).ok())
    }
}
