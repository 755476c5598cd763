//! One error type for everything the router answers itself, and its one mapping to the
//! OpenAI/vLLM error envelope `{"error": {"message", "type", "param", "code"}}`.
//!
//! Errors that vLLM returns are not `RouterError`s: they are relayed unchanged.

use bytes::Bytes;
use http::StatusCode;
use serde_json::json;

/// What went wrong, as a stable name. The name is the `kind` in logs, metrics and the audit
/// log; `error_kinds()` lists them all for tests and docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidJson,
    InvalidRequest,
    BodyTooLarge,
    ModelNotFound,
    RouteNotFound,
    MethodNotAllowed,
    Unauthorized,
    RateLimited,
    /// The shared quota counters cannot be reached and the policy refuses uncounted requests.
    QuotaUnavailable,
    NoHealthyBackend,
    UpstreamUnreachable,
    UpstreamTimeout,
    /// The replica a request was placed on could not load its adapter.
    AdapterLoadFailed,
    /// The router stopped before the request ended (its drain time ran out).
    ShuttingDown,
    Internal,
}

pub const ALL_KINDS: &[ErrorKind] = &[
    ErrorKind::InvalidJson,
    ErrorKind::InvalidRequest,
    ErrorKind::BodyTooLarge,
    ErrorKind::ModelNotFound,
    ErrorKind::RouteNotFound,
    ErrorKind::MethodNotAllowed,
    ErrorKind::Unauthorized,
    ErrorKind::RateLimited,
    ErrorKind::QuotaUnavailable,
    ErrorKind::NoHealthyBackend,
    ErrorKind::UpstreamUnreachable,
    ErrorKind::UpstreamTimeout,
    ErrorKind::AdapterLoadFailed,
    ErrorKind::ShuttingDown,
    ErrorKind::Internal,
];

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidJson => "invalid_json",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::RouteNotFound => "route_not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::QuotaUnavailable => "quota_unavailable",
            ErrorKind::NoHealthyBackend => "no_healthy_backend",
            ErrorKind::UpstreamUnreachable => "upstream_unreachable",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::AdapterLoadFailed => "adapter_load_failed",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::Internal => "internal",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidJson | ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::ModelNotFound | ErrorKind::RouteNotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::NoHealthyBackend | ErrorKind::QuotaUnavailable | ErrorKind::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorKind::UpstreamUnreachable | ErrorKind::AdapterLoadFailed => StatusCode::BAD_GATEWAY,
            ErrorKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The envelope's `type`: the OpenAI SDK's exception class for the status, the same
    /// spelling vLLM uses (`NotFoundError`, `BadRequestError`).
    pub fn type_name(self) -> &'static str {
        type_for_status(self.status().as_u16())
    }
}

/// The envelope's `type` for an HTTP status.
pub fn type_for_status(status: u16) -> &'static str {
    match status {
        400 => "BadRequestError",
        401 => "AuthenticationError",
        403 => "PermissionDeniedError",
        404 => "NotFoundError",
        405 => "MethodNotAllowedError",
        409 => "ConflictError",
        413 => "RequestTooLargeError",
        422 => "UnprocessableEntityError",
        429 => "RateLimitError",
        502 => "BadGatewayError",
        503 => "ServiceUnavailableError",
        504 => "GatewayTimeoutError",
        _ => "InternalServerError",
    }
}

/// The OpenAI error envelope, for errors the router answers itself.
pub fn envelope(status: u16, message: &str, param: Option<&str>) -> Bytes {
    let v = json!({"error": {"message": message, "type": type_for_status(status), "param": param, "code": status}});
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

#[derive(Debug, Clone)]
pub struct RouterError {
    pub kind: ErrorKind,
    pub message: String,
    pub param: Option<&'static str>,
    /// Seconds for a `retry-after` header (quotas).
    pub retry_after: Option<u64>,
}

impl RouterError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RouterError { kind, message: message.into(), param: None, retry_after: None }
    }

    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    /// The answer for a model the caller may not use. It is the same whether the model does
    /// not exist or belongs to someone else, so it reveals nothing.
    pub fn model_not_found(model: &str) -> Self {
        RouterError::new(ErrorKind::ModelNotFound, format!("The model `{model}` does not exist.")).with_param("model")
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    pub fn body(&self) -> Bytes {
        envelope(self.status().as_u16(), &self.message, self.param)
    }
}

impl std::fmt::Display for RouterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for RouterError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_matches_vllm_shape() {
        let e = RouterError::model_not_found("nope");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["type"], "NotFoundError");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["code"], 404);
        assert_eq!(v["error"]["message"], "The model `nope` does not exist.");
    }

    #[test]
    fn every_kind_has_distinct_name() {
        let mut names: Vec<_> = ALL_KINDS.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL_KINDS.len());
    }
}
