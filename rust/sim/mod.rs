//! A vLLM simulator, for tests, the demo and benchmarks only: it is not an inference engine.
//!
//! It speaks vLLM's OpenAI server as ../shared/reference/vllm-lora-api.md records it (routes,
//! status codes, bodies, SSE chunk shapes, runtime LoRA load/unload, `/metrics`) and models
//! what a router cares about: `max_loras` GPU slots with LRU eviction, a load delay when a
//! non-resident adapter is used, requests that wait for a slot ("deferred"), and configurable
//! time to first token and inter-token latency. It runs on the native core so that benchmarks
//! measure the router, not the simulator.
//!
//! Simulator-only additions are named so: `GET /sim/requests` (the last request bodies it
//! received) and `lora_router_sim:*` metrics.

pub mod generate;
pub mod handlers;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use state::SimState;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    pub served_model_name: String,
    /// Shown as the base model's `root` (vLLM shows the model path).
    pub model_path: String,
    /// Static adapters, `(name, path)`, as `--lora-modules name=path`.
    pub lora_modules: Vec<(String, String)>,
    pub max_loras: usize,
    pub max_lora_rank: u32,
    pub max_model_len: u64,
    pub max_num_seqs: usize,
    pub allow_runtime_lora_updating: bool,
    pub ttft_ms: f64,
    pub itl_ms: f64,
    pub lora_load_ms: f64,
    pub default_max_tokens: u64,
    /// How many recent request bodies `/sim/requests` keeps.
    pub record_requests: usize,
}

impl SimConfig {
    pub fn ttft(&self) -> Duration {
        Duration::from_secs_f64(self.ttft_ms.max(0.0) / 1000.0)
    }
    pub fn itl(&self) -> Duration {
        Duration::from_secs_f64(self.itl_ms.max(0.0) / 1000.0)
    }
    pub fn lora_load(&self) -> Duration {
        Duration::from_secs_f64(self.lora_load_ms.max(0.0) / 1000.0)
    }
}

/// Checks static adapters the way vLLM does at startup (each must be a directory holding
/// `adapter_config.json`) and builds the state.
pub fn build(config: SimConfig) -> Result<Arc<SimState>, String> {
    if config.max_loras == 0 {
        return Err("--max-loras must be at least 1".into());
    }
    for (name, path) in &config.lora_modules {
        state::check_adapter_dir(path, config.max_lora_rank)
            .map_err(|e| format!("cannot load LoRA module '{name}' from {path}: {e}"))?;
    }
    Ok(Arc::new(SimState::new(config)))
}
