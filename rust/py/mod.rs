//! The only code that knows about Python: the `lora_router._native` module. It takes plain
//! JSON plans and configs from the Python layer and hands back handles; see
//! python/lora_router/_native.pyi for the documented surface.

mod admin;
mod bridge;
mod classifier;
mod models;
mod router;
mod simulator;
mod store;

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::ALL_KINDS;
use crate::plan::PlanError;

create_exception!(lora_router._native, PlanErrorPy, PyValueError, "A plan the native core cannot compile.");

pub(crate) fn plan_error(e: PlanError) -> PyErr {
    PlanErrorPy::new_err(e.to_string())
}

/// The OpenAI-style error body the router answers with, for errors the Python layer
/// answers (the admin API), so both write the same envelope.
#[pyfunction]
#[pyo3(signature = (status, message, param = None))]
fn error_body(status: u16, message: &str, param: Option<&str>) -> String {
    String::from_utf8_lossy(&crate::errors::envelope(status, message, param)).into_owned()
}

/// Every error kind the router answers with, as (kind, HTTP status, envelope type).
#[pyfunction]
fn error_kinds() -> Vec<(&'static str, u16, &'static str)> {
    ALL_KINDS.iter().map(|k| (k.name(), k.status().as_u16(), k.type_name())).collect()
}

#[pymodule(gil_used = false)]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<router::PyRouter>()?;
    m.add_class::<simulator::PySimulator>()?;
    m.add_class::<models::PyTextModel>()?;
    m.add_function(wrap_pyfunction!(models::init_onnxruntime, m)?)?;
    m.add("PlanError", m.py().get_type::<PlanErrorPy>())?;
    m.add("AdapterError", m.py().get_type::<admin::AdapterErrorPy>())?;
    m.add("StoreUnavailable", m.py().get_type::<store::StoreUnavailablePy>())?;
    m.add_function(wrap_pyfunction!(error_kinds, m)?)?;
    m.add_function(wrap_pyfunction!(error_body, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
