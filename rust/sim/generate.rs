//! What the simulator answers: vLLM's response and chunk shapes, with deterministic text
//! (a different word sequence per model, so tests can tell adapters apart), and a streaming
//! body that releases its GPU slot when it ends or the client goes away.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use serde_json::{json, Value};
use tokio::time::Sleep;

use super::SimState;
use crate::util::hash::stable_hash;
use crate::util::time::unix_seconds;

const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima",
    "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray",
];

pub const FINGERPRINT: &str = "vllm-0.32.0-sim00000";

/// The tokens a model "generates": seeded by the model name, so each adapter answers differently.
pub fn tokens(model: &str, n: u64) -> Vec<String> {
    let seed = stable_hash(&[model.as_bytes()]);
    (0..n)
        .map(|i| {
            let h = stable_hash(&[&seed.to_le_bytes(), &i.to_le_bytes()]);
            format!(" {}", WORDS[(h % WORDS.len() as u64) as usize])
        })
        .collect()
}

/// A rough prompt token count (vLLM counts real tokens; the simulator has no tokenizer).
pub fn prompt_tokens(body: &Value) -> u64 {
    let mut chars = 0usize;
    if let Some(Value::Array(messages)) = body.get("messages") {
        for m in messages {
            chars += crate::request::content_text(m.get("content")).len() + 8;
        }
    }
    match body.get("prompt") {
        Some(Value::String(p)) => chars += p.len(),
        Some(Value::Array(items)) => chars += items.iter().filter_map(Value::as_str).map(str::len).sum::<usize>(),
        _ => {}
    }
    (chars as u64 / 4).max(1)
}

pub struct Completion {
    pub chat: bool,
    pub id: String,
    pub model: String,
    pub tokens: Vec<String>,
    pub prompt_tokens: u64,
    pub include_usage: bool,
}

impl Completion {
    pub fn new(
        chat: bool,
        request_id: Option<&str>,
        model: &str,
        max_tokens: u64,
        prompt_tokens: u64,
        include_usage: bool,
    ) -> Self {
        let prefix = if chat { "chatcmpl-" } else { "cmpl-" };
        let id = match request_id {
            Some(r) => format!("{prefix}{r}"),
            None => format!("{prefix}{:016x}", crate::util::rng::next_u64()),
        };
        Completion {
            chat,
            id,
            model: model.to_string(),
            tokens: tokens(model, max_tokens),
            prompt_tokens,
            include_usage,
        }
    }

    fn usage(&self) -> Value {
        let n = self.tokens.len() as u64;
        json!({"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens + n, "completion_tokens": n})
    }

    pub fn full_body(&self) -> Vec<u8> {
        let text: String = self.tokens.concat();
        let mut usage = self.usage();
        usage["prompt_tokens_details"] = Value::Null;
        usage["completion_tokens_details"] = Value::Null;
        let created = unix_seconds();
        let v = if self.chat {
            json!({"id": self.id, "object": "chat.completion", "created": created, "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null,
                    "annotations": null, "audio": null, "function_call": null, "reasoning": null},
                    "logprobs": null, "finish_reason": "length", "stop_reason": null, "token_ids": null, "routed_experts": null}],
                "service_tier": null, "system_fingerprint": FINGERPRINT, "usage": usage,
                "prompt_logprobs": null, "prompt_token_ids": null, "prompt_text": null,
                "kv_transfer_params": null, "ec_transfer_params": null, "metrics": null})
        } else {
            json!({"id": self.id, "object": "text_completion", "created": created, "model": self.model,
                "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": "length",
                    "stop_reason": null, "token_ids": null, "prompt_logprobs": null, "prompt_token_ids": null,
                    "routed_experts": null}],
                "service_tier": null, "system_fingerprint": FINGERPRINT, "usage": usage, "kv_transfer_params": null,
                "ec_transfer_params": null, "metrics": null})
        };
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// SSE events in vLLM's order, each with the delay before it: the role chunk at once, the
    /// first token after `ttft`, each further token after `itl` (the last with `finish_reason`),
    /// the usage chunk if asked for, then `[DONE]`.
    pub fn timed_events(&self, ttft: Duration, itl: Duration) -> Vec<(Duration, Bytes)> {
        let created = unix_seconds();
        let object = if self.chat { "chat.completion.chunk" } else { "text_completion" };
        let mut out = Vec::with_capacity(self.tokens.len() + 3);
        if self.chat {
            out.push((Duration::ZERO, event(&json!({"id": self.id, "object": object, "created": created, "model": self.model,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}],
                "prompt_token_ids": null, "prompt_text": null}))));
        }
        let last = self.tokens.len().saturating_sub(1);
        for (i, t) in self.tokens.iter().enumerate() {
            let finish = if i == last { json!("length") } else { Value::Null };
            let mut choice = if self.chat {
                json!({"index": 0, "delta": {"content": t}, "logprobs": null, "finish_reason": finish, "token_ids": null})
            } else {
                json!({"index": 0, "text": t, "logprobs": null, "finish_reason": finish, "stop_reason": null,
                    "prompt_token_ids": null, "token_ids": null})
            };
            if i == last && self.chat {
                choice["stop_reason"] = Value::Null;
            }
            let mut chunk =
                json!({"id": self.id, "object": object, "created": created, "model": self.model, "choices": [choice]});
            if i == last && !self.include_usage {
                chunk["system_fingerprint"] = json!(FINGERPRINT);
            }
            out.push((if i == 0 { ttft } else { itl }, event(&chunk)));
        }
        if self.include_usage {
            out.push((
                Duration::ZERO,
                event(&json!({"id": self.id, "object": object, "created": created, "model": self.model,
                "choices": [], "usage": self.usage(), "system_fingerprint": FINGERPRINT})),
            ));
        }
        out.push((Duration::ZERO, Bytes::from_static(b"data: [DONE]\n\n")));
        out
    }
}

fn event(v: &Value) -> Bytes {
    let mut b = b"data: ".to_vec();
    b.extend_from_slice(&serde_json::to_vec(v).unwrap_or_default());
    b.extend_from_slice(b"\n\n");
    Bytes::from(b)
}

/// Holds a request's place in the engine (running count and, for adapters, the GPU slot)
/// until dropped. A drop before `finish` counts as a cancelled request.
pub struct EngineSlot {
    pub state: Arc<SimState>,
    pub adapter: Option<Arc<str>>,
    pub finished: bool,
    pub generated: u64,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl EngineSlot {
    pub fn new(
        state: Arc<SimState>,
        adapter: Option<Arc<str>>,
        permit: tokio::sync::OwnedSemaphorePermit,
        generated: u64,
    ) -> Self {
        state.running.fetch_add(1, Ordering::Relaxed);
        EngineSlot { state, adapter, finished: false, generated, _permit: permit }
    }

    pub fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.state.generation_tokens_total.fetch_add(self.generated, Ordering::Relaxed);
            self.state.finished_length_total.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for EngineSlot {
    fn drop(&mut self) {
        self.state.running.fetch_sub(1, Ordering::Relaxed);
        if let Some(a) = &self.adapter {
            self.state.release_slot(a);
        }
        if !self.finished {
            self.state.cancelled_total.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The SSE body: each event goes out after its delay; the slot is released at the end or
/// when the client goes away.
pub struct StreamBody {
    events: VecDeque<(Duration, Bytes)>,
    timer: Option<Pin<Box<Sleep>>>,
    slot: Option<EngineSlot>,
}

impl StreamBody {
    pub fn new(events: Vec<(Duration, Bytes)>, slot: EngineSlot) -> Self {
        StreamBody { events: events.into(), timer: None, slot: Some(slot) }
    }
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let Some((delay, _)) = this.events.front() else {
            if let Some(mut slot) = this.slot.take() {
                slot.finish();
            }
            return Poll::Ready(None);
        };
        if !delay.is_zero() {
            let delay = *delay;
            let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.timer = None;
        }
        let (_, chunk) = this.events.pop_front().expect("checked non-empty");
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}
