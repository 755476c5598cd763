//! `Simulator`: the vLLM simulator (a test and demo tool), served on the native runtime.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::server::{self, ServerHandle};
use crate::sim::{self, handlers, SimConfig, SimState};

#[pyclass(name = "Simulator", module = "lora_router._native", frozen)]
pub struct PySimulator {
    state: Arc<SimState>,
    threads: usize,
    running: Mutex<Option<ServerHandle>>,
}

#[pymethods]
impl PySimulator {
    #[new]
    #[pyo3(signature = (config_json, threads = 0))]
    fn new(config_json: &str, threads: usize) -> PyResult<Self> {
        let config: SimConfig =
            serde_json::from_str(config_json).map_err(|e| PyValueError::new_err(format!("simulator config: {e}")))?;
        let state = sim::build(config).map_err(PyValueError::new_err)?;
        Ok(PySimulator { state, threads, running: Mutex::new(None) })
    }

    fn start(&self, py: Python<'_>, host: &str, port: u16) -> PyResult<(String, u16)> {
        let mut running = self.running.lock().map_err(|_| PyRuntimeError::new_err("simulator state poisoned"))?;
        if running.is_some() {
            return Err(PyRuntimeError::new_err("the simulator is already serving"));
        }
        let addr = server::resolve(host, port).map_err(|e| PyOSError::new_err(e.to_string()))?;
        let rt = server::runtime(self.threads);
        let state = self.state.clone();
        let handle = py
            .detach(|| server::spawn(rt, addr, move |req| handlers::handle(state.clone(), req), Default::default()))
            .map_err(|e| PyOSError::new_err(format!("cannot listen on {addr}: {e}")))?;
        let local = handle.local_addr;
        *running = Some(handle);
        Ok((local.ip().to_string(), local.port()))
    }

    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.running.lock().map_err(|_| PyRuntimeError::new_err("simulator state poisoned"))?.take();
        if let Some(h) = taken {
            py.detach(move || h.stop(Duration::from_secs(1)));
        }
        Ok(())
    }

    /// Counters since start: requests, cancelled, lora_loads, lora_evictions, uptime_s.
    fn stats(&self) -> Vec<(&'static str, f64)> {
        let s = &self.state;
        vec![
            ("requests", s.requests_total.load(Ordering::Relaxed) as f64),
            ("cancelled", s.cancelled_total.load(Ordering::Relaxed) as f64),
            ("lora_loads", s.lora_loads_total.load(Ordering::Relaxed) as f64),
            ("lora_evictions", s.lora_evictions_total.load(Ordering::Relaxed) as f64),
            ("uptime_s", s.started.elapsed().as_secs_f64()),
        ]
    }
}
