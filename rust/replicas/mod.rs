//! Working with the vLLM replicas (their state lives in state/): `discovery` turns the
//! plan's endpoints into members (configured addresses, or what a DNS name resolves to);
//! `health` probes them and `sync` reads their adapters, queue and slots; `select` picks one
//! for a request; `vllm` speaks vLLM's adapter API; `ondemand` loads an adapter where a
//! request needs it.

pub mod discovery;
pub mod health;
pub mod ondemand;
pub mod select;
pub mod sync;
pub mod vllm;

pub use crate::state::replica::{InflightGuard, Replica, ReplicaSpec};
