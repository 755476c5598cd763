//! The OpenAI request body, parsed once. Handlers read `model`, `stream` and the text to
//! classify from here; `decision::rewrite` edits the same map, and every field the router does
//! not own goes upstream untouched and in its original order.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::errors::{ErrorKind, RouterError};
use crate::plan::MessagePolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKind {
    Chat,
    Completions,
}

impl ApiKind {
    pub fn path(self) -> &'static str {
        match self {
            ApiKind::Chat => "/v1/chat/completions",
            ApiKind::Completions => "/v1/completions",
        }
    }
}

/// What the client asked for in `model` (and LoRAX's `adapter_id`).
#[derive(Debug, PartialEq, Eq)]
pub enum Requested<'a> {
    /// No model, or a virtual one (`MoM`, `auto`): the router chooses.
    Auto,
    Named(&'a str),
}

#[derive(Debug, Clone)]
pub struct RequestView {
    pub kind: ApiKind,
    pub body: Map<String, Value>,
    pub stream: bool,
}

impl RequestView {
    pub fn parse(kind: ApiKind, bytes: &[u8]) -> Result<RequestView, RouterError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            RouterError::new(ErrorKind::InvalidJson, format!("The request body is not valid JSON: {e}"))
        })?;
        let Value::Object(body) = value else {
            return Err(RouterError::new(ErrorKind::InvalidRequest, "The request body must be a JSON object."));
        };
        match kind {
            ApiKind::Chat => match body.get("messages") {
                None | Some(Value::Null) => {
                    return Err(RouterError::new(ErrorKind::InvalidRequest, "Field required: 'messages'.")
                        .with_param("messages"))
                }
                Some(Value::Array(a)) if !a.is_empty() => {
                    if a.iter().any(|m| !m.is_object()) {
                        return Err(RouterError::new(ErrorKind::InvalidRequest, "Each message must be an object.")
                            .with_param("messages"));
                    }
                }
                Some(_) => {
                    return Err(RouterError::new(ErrorKind::InvalidRequest, "'messages' must be a non-empty list.")
                        .with_param("messages"))
                }
            },
            ApiKind::Completions => {
                if matches!(body.get("prompt"), None | Some(Value::Null)) {
                    return Err(
                        RouterError::new(ErrorKind::InvalidRequest, "Field required: 'prompt'.").with_param("prompt")
                    );
                }
            }
        }
        for field in ["model", "adapter_id"] {
            if let Some(v) = body.get(field) {
                if !(v.is_string() || v.is_null()) {
                    return Err(RouterError::new(ErrorKind::InvalidRequest, format!("'{field}' must be a string."))
                        .with_param(if field == "model" { "model" } else { "adapter_id" }));
                }
            }
        }
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(
                    RouterError::new(ErrorKind::InvalidRequest, "'stream' must be a boolean.").with_param("stream")
                )
            }
        };
        Ok(RequestView { kind, body, stream })
    }

    /// A view built from `{"text": ...}` or `{"messages": [...]}` for `/v1/classify` and the CLI.
    pub fn for_classification(bytes: &[u8]) -> Result<RequestView, RouterError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            RouterError::new(ErrorKind::InvalidJson, format!("The request body is not valid JSON: {e}"))
        })?;
        let Value::Object(mut body) = value else {
            return Err(RouterError::new(ErrorKind::InvalidRequest, "The request body must be a JSON object."));
        };
        if let Some(text) = body.remove("text") {
            let Value::String(text) = text else {
                return Err(RouterError::new(ErrorKind::InvalidRequest, "'text' must be a string.").with_param("text"));
            };
            let msg = serde_json::json!([{"role": "user", "content": text}]);
            body.insert("messages".into(), msg);
        } else if !body.contains_key("messages") {
            return Err(RouterError::new(ErrorKind::InvalidRequest, "Give 'text' or 'messages'.").with_param("text"));
        }
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        RequestView::parse(ApiKind::Chat, &bytes)
    }

    pub fn model(&self) -> Option<&str> {
        self.body.get("model").and_then(Value::as_str)
    }

    /// LoRAX names the adapter in its own field.
    /// The OpenAI `user` field: who the end user is (experiments stick to it).
    pub fn user(&self) -> Option<&str> {
        self.body.get("user").and_then(Value::as_str)
    }

    pub fn adapter_id(&self) -> Option<&str> {
        self.body.get("adapter_id").and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    /// The text signals classify, chosen by the plan's message policy.
    pub fn classify_text(&self, policy: MessagePolicy) -> String {
        match self.kind {
            ApiKind::Completions => prompt_text(self.body.get("prompt")),
            ApiKind::Chat => {
                let Some(Value::Array(messages)) = self.body.get("messages") else {
                    return String::new();
                };
                let role = |m: &Value| m.get("role").and_then(Value::as_str).unwrap_or("").to_string();
                match policy {
                    MessagePolicy::LastUser => messages
                        .iter()
                        .rev()
                        .find(|m| role(m) == "user")
                        .map(|m| content_text(m.get("content")))
                        .unwrap_or_default(),
                    MessagePolicy::AllUser => join(messages.iter().filter(|m| role(m) == "user")),
                    MessagePolicy::Conversation => join(messages.iter()),
                }
            }
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(&self.body).unwrap_or_default())
    }
}

fn join<'a>(messages: impl Iterator<Item = &'a Value>) -> String {
    let mut out = String::new();
    for m in messages {
        let t = content_text(m.get("content"));
        if t.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&t);
    }
    out
}

/// Message content is a string or a list of parts; only text parts count.
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str).unwrap_or("text") == "text")
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            texts.join("\n")
        }
        _ => String::new(),
    }
}

fn prompt_text(prompt: Option<&Value>) -> String {
    match prompt {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<RequestView, RouterError> {
        RequestView::parse(ApiKind::Chat, body.as_bytes())
    }

    #[test]
    fn errors_are_specific() {
        assert_eq!(chat("{not json").unwrap_err().kind, ErrorKind::InvalidJson);
        assert_eq!(chat("[]").unwrap_err().kind, ErrorKind::InvalidRequest);
        assert_eq!(chat(r#"{"model":"x"}"#).unwrap_err().param, Some("messages"));
        assert_eq!(chat(r#"{"messages":[]}"#).unwrap_err().param, Some("messages"));
        assert_eq!(
            chat(r#"{"messages":[{"role":"user","content":"x"}],"stream":"yes"}"#).unwrap_err().param,
            Some("stream")
        );
        assert_eq!(chat(r#"{"messages":[{"role":"user","content":"x"}],"model":3}"#).unwrap_err().param, Some("model"));
        let e = RequestView::parse(ApiKind::Completions, br#"{"model":"x"}"#).unwrap_err();
        assert_eq!(e.param, Some("prompt"));
    }

    #[test]
    fn text_policies() {
        let v = chat(
            r#"{"messages":[{"role":"system","content":"sys"},{"role":"user","content":"first"},
                {"role":"assistant","content":"reply"},{"role":"user","content":[{"type":"text","text":"second"},{"type":"image_url","image_url":{}}]}]}"#,
        )
        .unwrap();
        assert_eq!(v.classify_text(MessagePolicy::LastUser), "second");
        assert_eq!(v.classify_text(MessagePolicy::AllUser), "first\nsecond");
        assert_eq!(v.classify_text(MessagePolicy::Conversation), "sys\nfirst\nreply\nsecond");
    }

    #[test]
    fn field_order_survives() {
        let raw = r#"{"zeta":1,"messages":[{"role":"user","content":"x"}],"alpha":{"b":2,"a":1},"model":"m"}"#;
        let v = chat(raw).unwrap();
        assert_eq!(String::from_utf8(v.to_bytes().to_vec()).unwrap(), raw.replace(['\n', ' '], ""));
    }

    #[test]
    fn classification_view_from_text() {
        let v = RequestView::for_classification(br#"{"text":"hello"}"#).unwrap();
        assert_eq!(v.classify_text(MessagePolicy::LastUser), "hello");
        assert!(RequestView::for_classification(br#"{}"#).is_err());
    }
}
