//! The simulator's HTTP routes, answering with vLLM 0.32's status codes and bodies.

use std::convert::Infallible;
use std::fmt::Write;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::generate::{prompt_tokens, Completion, EngineSlot, StreamBody};
use super::state::{check_adapter_dir, AdapterDirError, SlotGrant};
use super::SimState;
use crate::util::time::unix_seconds;

pub enum SimBody {
    Full(Option<Bytes>),
    Stream(Box<StreamBody>),
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            SimBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            SimBody::Stream(s) => Pin::new(s.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, SimBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            SimBody::Full(None) => SizeHint::with_exact(0),
            SimBody::Stream(_) => SizeHint::default(),
        }
    }
}

type Resp = Response<SimBody>;

fn respond(status: StatusCode, content_type: Option<&'static str>, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(SimBody::Full(Some(body.into())));
    *r.status_mut() = status;
    if let Some(ct) = content_type {
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    r
}

fn json_resp(status: StatusCode, v: &Value) -> Resp {
    respond(status, Some("application/json"), serde_json::to_vec(v).unwrap_or_default())
}

/// vLLM's error envelope.
fn error(status: StatusCode, message: &str, kind: &str, param: Option<&str>) -> Resp {
    json_resp(status, &json!({"error": {"message": message, "type": kind, "param": param, "code": status.as_u16()}}))
}

/// vLLM answers request-validation failures with 400 (not FastAPI's 422) in this shape; the
/// input is summarised as pydantic does (`<dict of 1 items>`).
fn missing_field(field: &str, body: &Value) -> Resp {
    let items = body.as_object().map(|o| o.len()).unwrap_or(0);
    let message = format!(
        "1 validation error:\n  {{'type': 'missing', 'loc': 'body.{field}', 'msg': 'Field required', 'input': '<dict of {items} items>'}}"
    );
    error(StatusCode::BAD_REQUEST, &message, "Bad Request", Some(&format!("body.{field}")))
}

fn invalid_json(e: &serde_json::Error) -> Resp {
    let message = format!(
        "1 validation error:\n  {{'type': 'json_invalid', 'loc': ('body', {}), 'msg': 'JSON decode error', 'input': {{}}, 'ctx': {{'error': '{e}'}}}}",
        e.column()
    );
    error(StatusCode::BAD_REQUEST, &message, "Bad Request", None)
}

fn detail(status: StatusCode, text: &str) -> Resp {
    json_resp(status, &json!({"detail": text}))
}

const ROUTES: &[&str] = &[
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/models",
    "/health",
    "/ping",
    "/version",
    "/load",
    "/metrics",
    "/sim/requests",
];

pub async fn handle(state: Arc<SimState>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let lora_api = state.config.allow_runtime_lora_updating;
    let resp = match (req.method().clone(), req.uri().path()) {
        (Method::POST, "/v1/chat/completions") => generate(state, req, true).await,
        (Method::POST, "/v1/completions") => generate(state, req, false).await,
        (Method::GET, "/v1/models") => models(&state),
        (Method::GET, "/health") | (Method::GET, "/ping") => respond(StatusCode::OK, None, Bytes::new()),
        (Method::GET, "/version") => json_resp(StatusCode::OK, &json!({"version": "0.32.0"})),
        (Method::GET, "/load") => {
            json_resp(StatusCode::OK, &json!({"server_load": state.running.load(Ordering::Relaxed)}))
        }
        (Method::GET, "/metrics") => {
            respond(StatusCode::OK, Some("text/plain; version=0.0.4; charset=utf-8"), metrics(&state))
        }
        (Method::POST, "/v1/load_lora_adapter") if lora_api => load_adapter(state, req).await,
        (Method::POST, "/v1/unload_lora_adapter") if lora_api => unload_adapter(state, req).await,
        (Method::GET, "/sim/requests") => recent(&state),
        (Method::DELETE, "/sim/requests") => {
            state.clear_recent();
            respond(StatusCode::NO_CONTENT, None, Bytes::new())
        }
        (_, p) if ROUTES.contains(&p) || (lora_api && p.ends_with("_lora_adapter")) => {
            detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        }
        _ => detail(StatusCode::NOT_FOUND, "Not Found"),
    };
    Ok(resp)
}

async fn read_json(req: Request<Incoming>, state: &SimState) -> Result<(http::HeaderMap, Value), Resp> {
    let path = req.uri().path().to_string();
    let (parts, body) = req.into_parts();
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Err(error(StatusCode::BAD_REQUEST, "could not read the request body", "Bad Request", None)),
    };
    state.remember(&path, &bytes);
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v @ Value::Object(_)) => Ok((parts.headers, v)),
        Ok(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "1 validation error:\n  {'type': 'model_attributes_type', 'loc': 'body', 'msg': 'Input should be a valid dictionary'}",
            "Bad Request",
            Some("body"),
        )),
        Err(e) => Err(invalid_json(&e)),
    }
}

async fn generate(state: Arc<SimState>, req: Request<Incoming>, chat: bool) -> Resp {
    state.requests_total.fetch_add(1, Ordering::Relaxed);
    let (headers, body) = match read_json(req, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let required = if chat { "messages" } else { "prompt" };
    if matches!(body.get(required), None | Some(Value::Null)) {
        return missing_field(required, &body);
    }
    let base = &state.config.served_model_name;
    let adapter = match body.get("model").and_then(Value::as_str) {
        None => None,
        Some(m) if m == base => None,
        Some(m) => match state.adapter(m) {
            Some(a) => Some(a),
            None => {
                let msg = format!("The model `{m}` does not exist. Valid aliases: {base}.");
                return error(StatusCode::NOT_FOUND, &msg, "NotFoundError", Some("model"));
            }
        },
    };
    let model = adapter.as_deref().unwrap_or(base).to_string();
    let max_tokens = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(state.config.default_max_tokens);
    if max_tokens > state.config.max_model_len {
        let msg = format!(
            "max_tokens={max_tokens} cannot be greater than max_model_len={}. Please request fewer output tokens. (parameter=max_tokens, value={max_tokens})",
            state.config.max_model_len
        );
        return error(StatusCode::BAD_REQUEST, &msg, "BadRequestError", Some("max_tokens"));
    }
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let prompt = prompt_tokens(&body);
    state.prompt_tokens_total.fetch_add(prompt, Ordering::Relaxed);
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok());
    let completion = Completion::new(chat, request_id, &model, max_tokens, prompt, include_usage);

    // Engine admission: a running slot (max_num_seqs), then a GPU slot for the adapter.
    let permit = match state.capacity.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            state.waiting_capacity.fetch_add(1, Ordering::Relaxed);
            let p = state.capacity.clone().acquire_owned().await;
            state.waiting_capacity.fetch_sub(1, Ordering::Relaxed);
            match p {
                Ok(p) => p,
                Err(_) => {
                    return error(StatusCode::SERVICE_UNAVAILABLE, "engine stopped", "ServiceUnavailableError", None)
                }
            }
        }
    };
    let grant = match &adapter {
        Some(a) => Some(state.acquire_slot(a).await),
        None => None,
    };
    let mut slot = EngineSlot::new(state.clone(), adapter, permit, max_tokens);
    state.touch_lora_info();
    if let Some(SlotGrant::Loaded { .. }) = grant {
        sleep(state.config.lora_load()).await;
    }
    let (ttft, itl) = (state.config.ttft(), state.config.itl());
    if stream {
        let events = completion.timed_events(ttft, itl);
        let mut r = Response::new(SimBody::Stream(Box::new(StreamBody::new(events, slot))));
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
        return r;
    }
    sleep(ttft + itl * (max_tokens.saturating_sub(1) as u32)).await;
    slot.finish();
    let r = respond(StatusCode::OK, Some("application/json"), completion.full_body());
    drop(slot);
    r
}

async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

fn string_field<'a>(body: &'a Value, field: &str) -> Option<&'a str> {
    body.get(field).and_then(Value::as_str)
}

async fn load_adapter(state: Arc<SimState>, req: Request<Incoming>) -> Resp {
    let (_, body) = match read_json(req, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(name) = string_field(&body, "lora_name") else {
        return missing_field("lora_name", &body);
    };
    let Some(path) = string_field(&body, "lora_path") else {
        return missing_field("lora_path", &body);
    };
    if name.is_empty() || path.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "Both 'lora_name' and 'lora_path' must be provided.",
            "InvalidUserInput",
            None,
        );
    }
    if name == state.config.served_model_name {
        let msg = format!("The lora adapter '{name}' conflicts with a served base model.");
        return error(StatusCode::BAD_REQUEST, &msg, "InvalidUserInput", None);
    }
    let inplace = body.get("load_inplace").and_then(Value::as_bool).unwrap_or(false);
    if state.adapter(name).is_some() && !inplace {
        let msg = format!(
            "The lora adapter '{name}' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True."
        );
        return error(StatusCode::BAD_REQUEST, &msg, "InvalidUserInput", None);
    }
    match check_adapter_dir(path, state.config.max_lora_rank) {
        Ok(()) => {}
        Err(AdapterDirError::NotFound) => {
            let msg = format!("Loading lora {name} failed: No adapter found for <path>");
            return error(StatusCode::NOT_FOUND, &msg, "NotFoundError", None);
        }
        Err(e @ AdapterDirError::RankTooLarge(..)) => {
            let msg = format!(
                "Call to add_lora method failed: Worker failed with error '{e}', please check the stack trace above for the root cause"
            );
            return error(StatusCode::INTERNAL_SERVER_ERROR, &msg, "InternalServerError", None);
        }
    }
    // vLLM validates and preloads the weights before answering.
    sleep(state.config.lora_load()).await;
    state.register(name, path);
    // Plain text and no content-type, exactly as vLLM answers.
    respond(StatusCode::OK, None, format!("Success: LoRA adapter '{name}' added successfully."))
}

async fn unload_adapter(state: Arc<SimState>, req: Request<Incoming>) -> Resp {
    let (_, body) = match read_json(req, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(name) = string_field(&body, "lora_name") else {
        return missing_field("lora_name", &body);
    };
    if !state.unregister(name) {
        let msg = format!("The lora adapter '{name}' cannot be found.");
        return error(StatusCode::NOT_FOUND, &msg, "NotFoundError", None);
    }
    respond(StatusCode::OK, None, format!("Success: LoRA adapter '{name}' removed successfully."))
}

fn models(state: &SimState) -> Resp {
    let created = unix_seconds();
    let c = &state.config;
    let perm = || {
        json!([{"id": format!("modelperm-{:016x}", crate::util::rng::next_u64()), "object": "model_permission",
            "created": created, "allow_create_engine": false, "allow_sampling": true, "allow_logprobs": true,
            "allow_search_indices": false, "allow_view": true, "allow_fine_tuning": false, "organization": "*",
            "group": null, "is_blocking": false}])
    };
    let mut data = vec![json!({"id": c.served_model_name, "object": "model", "created": created, "owned_by": "vllm",
        "root": c.model_path, "parent": null, "max_model_len": c.max_model_len, "permission": perm()})];
    for (name, path) in state.adapters() {
        data.push(json!({"id": &*name, "object": "model", "created": created, "owned_by": "vllm",
            "root": path, "parent": c.served_model_name, "max_model_len": null, "permission": perm()}));
    }
    json_resp(StatusCode::OK, &json!({"object": "list", "data": data}))
}

fn recent(state: &SimState) -> Resp {
    let items: Vec<Value> = state
        .recent()
        .into_iter()
        .map(|(path, body)| {
            let parsed = serde_json::from_slice::<Value>(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
            json!({"path": path, "body": parsed})
        })
        .collect();
    json_resp(StatusCode::OK, &json!({"requests": items}))
}

fn metrics(state: &SimState) -> String {
    state.touch_lora_info();
    let m = &state.config.served_model_name;
    let labels = format!("engine=\"0\",model_name=\"{m}\"");
    let running = state.running.load(Ordering::Relaxed);
    let cap = state.waiting_capacity.load(Ordering::Relaxed);
    let deferred = state.waiting_deferred.load(Ordering::Relaxed);
    let mut out = String::with_capacity(2048);
    let gauge = |out: &mut String, name: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{value}");
    };
    gauge(
        &mut out,
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
        format!("vllm:num_requests_running{{{labels}}} {running}.0"),
    );
    gauge(
        &mut out,
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
        format!("vllm:num_requests_waiting{{{labels}}} {}.0", cap + deferred),
    );
    gauge(
        &mut out,
        "vllm:num_requests_waiting_by_reason",
        "Number of requests waiting, by reason.",
        format!(
            "vllm:num_requests_waiting_by_reason{{{labels},reason=\"capacity\"}} {cap}.0\nvllm:num_requests_waiting_by_reason{{{labels},reason=\"deferred\"}} {deferred}.0"
        ),
    );
    gauge(
        &mut out,
        "vllm:kv_cache_usage_perc",
        "KV-cache usage. 1 means 100 percent usage.",
        format!("vllm:kv_cache_usage_perc{{{labels}}} 0.0"),
    );
    let mut info = String::new();
    for (set, ts) in state.lora_info() {
        let _ = writeln!(
            info,
            "vllm:lora_requests_info{{max_lora=\"{}\",running_lora_adapters=\"{set}\",waiting_lora_adapters=\"{set}\"}} {ts:e}",
            state.config.max_loras
        );
    }
    gauge(&mut out, "vllm:lora_requests_info", "Running stats on lora requests.", info.trim_end().to_string());
    // prometheus_client's process collector, which vLLM's /metrics includes.
    gauge(
        &mut out,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        format!("process_start_time_seconds {:.2}", state.started_unix),
    );
    let counter = |out: &mut String, name: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{value}");
    };
    counter(
        &mut out,
        "vllm:prompt_tokens_total",
        "Number of prefill tokens processed.",
        format!("vllm:prompt_tokens_total{{{labels}}} {}.0", state.prompt_tokens_total.load(Ordering::Relaxed)),
    );
    counter(
        &mut out,
        "vllm:generation_tokens_total",
        "Number of generation tokens processed.",
        format!("vllm:generation_tokens_total{{{labels}}} {}.0", state.generation_tokens_total.load(Ordering::Relaxed)),
    );
    counter(
        &mut out,
        "vllm:request_success_total",
        "Count of successfully processed requests.",
        format!(
            "vllm:request_success_total{{{labels},finished_reason=\"length\"}} {}.0",
            state.finished_length_total.load(Ordering::Relaxed)
        ),
    );
    out.push_str("# Simulator-only series (lora-router sim; not emitted by vLLM).\n");
    counter(
        &mut out,
        "lora_router_sim:requests_total",
        "Inference requests received.",
        format!("lora_router_sim:requests_total {}", state.requests_total.load(Ordering::Relaxed)),
    );
    counter(
        &mut out,
        "lora_router_sim:requests_cancelled_total",
        "Requests whose client went away before the end.",
        format!("lora_router_sim:requests_cancelled_total {}", state.cancelled_total.load(Ordering::Relaxed)),
    );
    counter(
        &mut out,
        "lora_router_sim:lora_loads_total",
        "Adapters loaded into a GPU slot.",
        format!("lora_router_sim:lora_loads_total {}", state.lora_loads_total.load(Ordering::Relaxed)),
    );
    counter(
        &mut out,
        "lora_router_sim:lora_evictions_total",
        "Adapters evicted from a GPU slot.",
        format!("lora_router_sim:lora_evictions_total {}", state.lora_evictions_total.load(Ordering::Relaxed)),
    );
    let mut resident = String::new();
    for a in state.resident() {
        let _ = writeln!(resident, "lora_router_sim:gpu_resident_adapter{{adapter=\"{a}\"}} 1");
    }
    gauge(
        &mut out,
        "lora_router_sim:gpu_resident_adapter",
        "Adapters resident in a GPU slot.",
        resident.trim_end().to_string(),
    );
    out
}
