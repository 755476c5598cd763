//! `TextModel` and `init_onnxruntime`: the native text models, for Python tooling (training a
//! classifier head, checking tokenizer parity). The data plane uses the same `TextModel`.

use std::sync::Arc;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::inference::{self, registry, ModelSpec, TextModel};

/// Loads ONNX Runtime from an absolute path to libonnxruntime (once per process).
#[pyfunction]
pub fn init_onnxruntime(path: &str) -> PyResult<()> {
    inference::init_onnxruntime(path).map_err(PyRuntimeError::new_err)
}

#[pyclass(name = "TextModel", module = "lora_router._native", frozen)]
pub struct PyTextModel {
    model: Arc<TextModel>,
}

#[pymethods]
impl PyTextModel {
    #[new]
    fn new(py: Python<'_>, spec_json: &str) -> PyResult<Self> {
        let spec: ModelSpec =
            serde_json::from_str(spec_json).map_err(|e| PyValueError::new_err(format!("model spec: {e}")))?;
        let model = py.detach(|| registry::get_or_load(&spec)).map_err(PyValueError::new_err)?;
        Ok(PyTextModel { model })
    }

    /// Token ids (special tokens included, within the budget), tokens the whole text had (or
    /// None if it was cut by characters first), and whether it was truncated.
    fn tokenize(&self, text: &str) -> PyResult<(Vec<i64>, Option<usize>, bool)> {
        let (ids, info) = self.model.tokenize(text).map_err(PyValueError::new_err)?;
        Ok((ids, info.original_tokens, info.truncated))
    }

    /// The model's output vector for each text (embeddings or logits), one text at a time.
    fn infer(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Vec<Vec<f32>>> {
        let model = self.model.clone();
        py.detach(move || texts.iter().map(|t| model.infer(t).map(|(v, _)| v)).collect::<Result<Vec<_>, String>>())
            .map_err(PyRuntimeError::new_err)
    }

    /// L2-normalised embeddings of `texts`, on every session in parallel.
    fn embed(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Vec<Vec<f32>>> {
        let model = self.model.clone();
        py.detach(move || model.embed_all(&texts))
            .map(|v| v.into_iter().map(|e| e.to_vec()).collect())
            .map_err(PyRuntimeError::new_err)
    }
}
