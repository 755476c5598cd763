//! Python classifiers behind the core's `ExternalClassifier`, called through py/bridge.rs.
//!
//! The callable receives `(text, messages_json, headers, tenant)` and returns `None` or a
//! `(category, confidence, model, system_prompt, use_reasoning)` tuple: the Python layer
//! (python/lora_router/classifier.py) wraps the user's function so this shape always holds.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

use super::bridge::{describe, PyCallable};
use crate::signals::{ExternalAnswer, ExternalClassifier, ExternalFuture, ExternalInput};

type Answer = Option<(String, f64, Option<String>, Option<String>, Option<bool>)>;

pub struct PyClassifier {
    entry: Arc<PyCallable>,
    status: Option<PyCallable>,
}

impl PyClassifier {
    pub fn new(entry: Py<PyAny>, status: Option<Py<PyAny>>, locals: Option<Arc<TaskLocals>>) -> Self {
        PyClassifier {
            entry: Arc::new(PyCallable::new(entry, locals)),
            status: status.map(|s| PyCallable::new(s, None)),
        }
    }
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

impl ExternalClassifier for PyClassifier {
    fn classify(&self, input: ExternalInput) -> ExternalFuture {
        let entry = self.entry.clone();
        Box::pin(async move {
            let args = (input.text, input.messages_json, input.headers, input.tenant);
            entry.call(args, answer).await
        })
    }

    fn status(&self) -> Option<String> {
        self.status.as_ref()?.call0_blocking::<String>()
    }
}
