//! What the router records about each request: Prometheus metrics and the JSON-lines audit
//! log. A `Completion` rides along with the response body and records once, when the body
//! ends or is dropped (a client that disconnects is recorded as such).

pub mod audit;
pub mod log;
pub mod metrics;
pub mod record;
pub mod usage;

pub use audit::AuditLog;
pub use metrics::Metrics;
pub use record::{Completion, Observer, Outcome, RequestRecord};
