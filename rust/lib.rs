//! lora-router's native core.
//!
//! The modules follow a request's path: a `plan` (compiled once from the dict Python builds)
//! drives the `proxy`, which parses a `request`, runs `signals`, takes a `decision`, picks one
//! of the `replicas`, forwards the request and records what happened in `observe`. `state`
//! holds what changes while the router runs (replicas, counters, run-time records), in the
//! process or shared by a fleet of routers through Redis.
//! `tenants` says who is calling, what they may use, which experiment arm serves them and
//! what quota they have left. `sim` is the vLLM simulator used by tests, the demo and the benchmarks. `py` (feature
//! `python`) is the only module that knows about Python.

pub mod decision;
pub mod errors;
pub mod inference;
pub mod observe;
pub mod plan;
pub mod proxy;
pub mod replicas;
pub mod request;
pub mod server;
pub mod signals;
pub mod sim;
pub mod state;
pub mod tenants;
pub mod util;

#[cfg(feature = "python")]
mod py;
