//! vLLM's adapter API, as ../shared/reference/vllm-lora-api.md records it: load and unload
//! (plain-text success bodies, JSON errors in either of vLLM's two shapes, 404
//! `{"detail":"Not Found"}` when run-time updating is off), `/v1/models` (adapters are the
//! entries with a `parent`) and the `/metrics` series placement uses. The only code that
//! talks to a replica about adapters; the data plane's on-demand loads and the Python
//! registry both go through it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

use super::Replica;
use crate::proxy::UpstreamClient;
use crate::state::residency::RuntimeUpdates;

/// Why an adapter call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterError {
    /// The replica does not accept run-time loads (VLLM_ALLOW_RUNTIME_LORA_UPDATING is off).
    RuntimeUpdatesOff,
    /// The replica answered with an error: its status and message.
    Replica { status: u16, message: String },
    /// No answer: connection failure or timeout.
    Unreachable(String),
}

impl std::fmt::Display for AdapterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdapterError::RuntimeUpdatesOff => {
                write!(
                    f,
                    "the replica does not accept run-time adapter loads (VLLM_ALLOW_RUNTIME_LORA_UPDATING is off)"
                )
            }
            AdapterError::Replica { status, message } => write!(f, "the replica answered {status}: {message}"),
            AdapterError::Unreachable(e) => write!(f, "the replica did not answer: {e}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    Now,
    /// It was loaded already, from the same path: success (idempotent).
    Already,
}

async fn call(
    client: &UpstreamClient,
    replica: &Replica,
    method: Method,
    path: &str,
    body: Option<Value>,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), AdapterError> {
    let uri = Uri::builder()
        .scheme("http")
        .authority(replica.authority.as_str())
        .path_and_query(path)
        .build()
        .map_err(|e| AdapterError::Unreachable(e.to_string()))?;
    let mut req = Request::new(Full::new(body.map(|b| Bytes::from(b.to_string())).unwrap_or_default()));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    req.headers_mut().insert(CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    if let Some(key) = replica.api_key() {
        req.headers_mut().insert(AUTHORIZATION, key);
    }
    let fut = async {
        let resp = client.request(req).await.map_err(|e| AdapterError::Unreachable(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|e| AdapterError::Unreachable(e.to_string()))?;
        Ok((status, bytes.to_bytes()))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| AdapterError::Unreachable(format!("no answer within {:.1} s", timeout.as_secs_f64())))?
}

/// The message of a vLLM error body: `{"error": {"message"}}` (0.32), `{"message"}` (older),
/// `{"detail"}` (FastAPI), else the text itself.
pub fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body).trim().to_string();
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return text };
    v.pointer("/error/message")
        .or_else(|| v.get("message"))
        .or_else(|| v.get("detail"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or(text)
}

/// vLLM's answer when the adapter routes do not exist.
fn is_route_missing(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::NOT_FOUND
        && serde_json::from_slice::<Value>(body).ok().and_then(|v| v.get("detail").cloned()) == Some(json!("Not Found"))
}

/// `POST /v1/load_lora_adapter`. On success the replica serves the adapter as `served`.
pub async fn load(
    client: &UpstreamClient,
    replica: &Replica,
    served: &str,
    path: &str,
    timeout: Duration,
) -> Result<Loaded, AdapterError> {
    let body = json!({"lora_name": served, "lora_path": path});
    let (status, bytes) = call(client, replica, Method::POST, "/v1/load_lora_adapter", Some(body), timeout).await?;
    if status.is_success() {
        replica.lora.set_runtime_updates(RuntimeUpdates::On);
        replica.lora.add_registered(Arc::from(served), path.to_string());
        return Ok(Loaded::Now);
    }
    if is_route_missing(status, &bytes) {
        replica.lora.set_runtime_updates(RuntimeUpdates::Off);
        return Err(AdapterError::RuntimeUpdatesOff);
    }
    replica.lora.set_runtime_updates(RuntimeUpdates::On);
    let message = error_message(&bytes);
    if status == StatusCode::BAD_REQUEST && message.contains("has already been loaded") {
        // Success only if it is the same adapter: compare the path vLLM serves it from.
        let models = list_adapters(client, replica, timeout).await?;
        if models.get(served).map(String::as_str) == Some(path) {
            replica.lora.add_registered(Arc::from(served), path.to_string());
            return Ok(Loaded::Already);
        }
        let other = models.get(served).cloned().unwrap_or_default();
        return Err(AdapterError::Replica {
            status: status.as_u16(),
            message: format!("{message} (it serves it from {other}, not {path})"),
        });
    }
    Err(AdapterError::Replica { status: status.as_u16(), message })
}

/// `POST /v1/unload_lora_adapter`. An adapter the replica does not serve counts as unloaded.
pub async fn unload(
    client: &UpstreamClient,
    replica: &Replica,
    served: &str,
    timeout: Duration,
) -> Result<(), AdapterError> {
    let body = json!({"lora_name": served});
    let (status, bytes) = call(client, replica, Method::POST, "/v1/unload_lora_adapter", Some(body), timeout).await?;
    if is_route_missing(status, &bytes) {
        replica.lora.set_runtime_updates(RuntimeUpdates::Off);
        return Err(AdapterError::RuntimeUpdatesOff);
    }
    if status.is_success() || status == StatusCode::NOT_FOUND {
        replica.lora.remove_registered(served);
        return Ok(());
    }
    Err(AdapterError::Replica { status: status.as_u16(), message: error_message(&bytes) })
}

/// Finds out whether the replica accepts run-time loads without changing anything: an unload
/// with no name is a validation error (400) where the routes exist, and 404
/// `{"detail":"Not Found"}` where run-time updating is off.
pub async fn probe_runtime_updates(
    client: &UpstreamClient,
    replica: &Replica,
    timeout: Duration,
) -> Result<RuntimeUpdates, AdapterError> {
    let (status, bytes) =
        call(client, replica, Method::POST, "/v1/unload_lora_adapter", Some(json!({})), timeout).await?;
    let r = if is_route_missing(status, &bytes) { RuntimeUpdates::Off } else { RuntimeUpdates::On };
    replica.lora.set_runtime_updates(r);
    Ok(r)
}

/// The adapters a replica serves (`/v1/models` entries with a `parent`): name -> root path.
pub async fn list_adapters(
    client: &UpstreamClient,
    replica: &Replica,
    timeout: Duration,
) -> Result<HashMap<String, String>, AdapterError> {
    let (status, bytes) = call(client, replica, Method::GET, "/v1/models", None, timeout).await?;
    if !status.is_success() {
        return Err(AdapterError::Replica { status: status.as_u16(), message: error_message(&bytes) });
    }
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| AdapterError::Replica { status: status.as_u16(), message: format!("bad /v1/models: {e}") })?;
    let mut out = HashMap::new();
    for m in v.get("data").and_then(Value::as_array).into_iter().flatten() {
        if m.get("parent").is_some_and(|p| !p.is_null()) {
            if let Some(id) = m.get("id").and_then(Value::as_str) {
                out.insert(id.to_string(), m.get("root").and_then(Value::as_str).unwrap_or_default().to_string());
            }
        }
    }
    Ok(out)
}

/// What placement reads from a replica's `/metrics`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReplicaMetrics {
    pub waiting: Option<u64>,
    /// `max_lora` of `vllm:lora_requests_info`, once the replica has emitted it.
    pub max_lora: Option<usize>,
    /// Adapters with requests in flight: the newest `lora_requests_info` series.
    pub active: Vec<String>,
    /// That series' value: the time of the engine step that reported it.
    pub active_at: Option<f64>,
    /// `process_start_time_seconds`: a change means the replica restarted.
    pub started: Option<f64>,
}

pub async fn metrics(
    client: &UpstreamClient,
    replica: &Replica,
    timeout: Duration,
) -> Result<ReplicaMetrics, AdapterError> {
    let (status, bytes) = call(client, replica, Method::GET, "/metrics", None, timeout).await?;
    if !status.is_success() {
        return Err(AdapterError::Replica { status: status.as_u16(), message: error_message(&bytes) });
    }
    Ok(parse_metrics(&String::from_utf8_lossy(&bytes)))
}

/// Reads the Prometheus text: sums `vllm:num_requests_waiting` over engines; of the
/// `vllm:lora_requests_info` series, whose value is a timestamp and whose old label sets are
/// never removed, takes the one with the largest value.
pub fn parse_metrics(text: &str) -> ReplicaMetrics {
    let mut m = ReplicaMetrics::default();
    let mut newest = f64::MIN;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        match name {
            "vllm:num_requests_waiting" => *m.waiting.get_or_insert(0) += value.max(0.0) as u64,
            "process_start_time_seconds" => m.started = Some(value),
            "vllm:lora_requests_info" => {
                if let Some(max) = label(labels, "max_lora").and_then(|v| v.parse().ok()) {
                    m.max_lora = Some(max);
                }
                if value > newest {
                    newest = value;
                    m.active_at = Some(value);
                    m.active = label(labels, "running_lora_adapters")
                        .map(|v| v.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
                        .unwrap_or_default();
                }
            }
            _ => {}
        }
    }
    m
}

fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let rest = &labels[start..];
    Some(&rest[..rest.find('"')?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_of_every_shape() {
        let new = br#"{"error":{"message":"Loading lora d failed: No adapter found for <path>","type":"NotFoundError","param":null,"code":404}}"#;
        assert_eq!(error_message(new), "Loading lora d failed: No adapter found for <path>");
        assert_eq!(error_message(br#"{"object":"error","message":"old","type":"x"}"#), "old");
        assert_eq!(error_message(br#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(error_message(b"Internal Server Error"), "Internal Server Error");
        assert!(is_route_missing(StatusCode::NOT_FOUND, br#"{"detail":"Not Found"}"#));
        assert!(!is_route_missing(StatusCode::NOT_FOUND, new));
    }

    #[test]
    fn metrics_as_vllm_writes_them() {
        let text = "# HELP vllm:lora_requests_info Running stats on lora requests.\n\
            # TYPE vllm:lora_requests_info gauge\n\
            vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"\",waiting_lora_adapters=\"\"} 1.7953144219814217e+09\n\
            vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"a,b\",waiting_lora_adapters=\"a,b\"} 1.7953144168073006e+09\n\
            vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"c\",waiting_lora_adapters=\"c\"} 1.7953144229755154e+09\n\
            vllm:num_requests_waiting{engine=\"0\",model_name=\"tiny-llama\"} 2.0\n\
            process_start_time_seconds 1.79531e+09\n";
        let m = parse_metrics(text);
        assert_eq!(m.waiting, Some(2));
        assert_eq!(m.max_lora, Some(2));
        assert_eq!(m.active, vec!["c".to_string()]);
        assert_eq!(m.started, Some(1.79531e9));
    }
}
