//! Keyword classification cost, in process (no HTTP).
//!
//! Groups:
//! - `keyword_2k_1000`: a 2 KiB prompt against 1,000 keywords (800 words, 200 two-word
//!   phrases) in four OR rules, with no keyword present and with 3 present.
//! - `request_path_2k`: everything the router does to a 2 KiB chat request before forwarding:
//!   parse the JSON body, run the keyword signal, decide, rewrite, serialise.
//!
//! Run: `cargo bench --bench signals_keyword` (target: keyword_2k_1000 under 20 µs).

mod common;

use std::time::Instant;

use common::fixtures;
use lora_router::decision::{decide, rewrite, RequestContext};
use lora_router::plan::Plan;
use lora_router::request::{ApiKind, RequestView};
use lora_router::signals::Signal;
use lora_router::state::LiveState;

fn plan(hits: usize) -> Plan {
    let kws = fixtures::keywords(1000, hits, 42);
    let (found, others) = kws.split_at(hits);
    let cats = ["technical", "medical", "legal", "finance"];
    let rules: Vec<serde_json::Value> = cats
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            let mut mine: Vec<String> = if ci == 0 { found.to_vec() } else { Vec::new() };
            mine.extend(others.iter().enumerate().filter(|(i, _)| i % 4 == ci).map(|(_, k)| k.clone()));
            serde_json::json!({"category": c, "operator": "OR", "keywords": mine, "case_sensitive": false, "whole_word": true})
        })
        .collect();
    let mut categories: Vec<serde_json::Value> = cats
        .iter()
        .map(|c| serde_json::json!({"name": c, "system_prompt": "You are an expert.", "system_prompt_mode": "replace",
            "targets": [{"model": "base", "adapter": format!("{c}-lora"), "score": 1.0, "use_reasoning": true, "reasoning_effort": "medium"}]}))
        .collect();
    categories.push(serde_json::json!({"name": "general", "system_prompt": null, "system_prompt_mode": "replace",
        "targets": [{"model": "base", "adapter": null, "score": 0.5, "use_reasoning": false, "reasoning_effort": "medium"}]}));
    let spec = serde_json::json!({
        "version": 1,
        "server": {"max_body_bytes": 1048576, "connect_timeout_ms": 1000, "request_timeout_ms": 5000,
                   "stream_idle_timeout_ms": 5000, "health_interval_ms": 1000, "health_timeout_ms": 500,
                   "drain_timeout_ms": 1000, "retry_connect_errors": true},
        "endpoints": [{"name": "e1", "host": "127.0.0.1", "port": 9, "weight": 1.0, "api_key": null, "max_loras": 4,
                       "discovery": {"type": "static"}}],
        "models": [{"name": "base", "endpoints": ["e1"], "reasoning": {"type": "chat_template_kwargs", "parameter": "enable_thinking"},
                    "adapters": cats.iter().map(|c| serde_json::json!({"name": format!("{c}-lora"), "served_name": format!("{c}-lora"),
                        "path": null, "min_replicas": 1, "max_replicas": null, "max_concurrency": null})).collect::<Vec<_>>()}],
        "categories": categories,
        "default_category": "general",
        "signals": [{"type": "keyword", "rules": rules}],
        "routing": {"virtual_models": ["MoM"], "router_model_name": "MoM", "classify_messages": "last_user", "evaluate_all_signals": false},
        "placement": {"policy": "lora-aware", "spill_threshold": 8, "load_timeout_ms": 1000},
        "audit": {"path": null},
        "admin_key": null,
        "tenants": [],
        "experiments": [],
        "store": {"redis": null, "prefix": "lora-router"},
        "fleet": {"nameservers": []},
        "hash": "bench"
    });
    Plan::from_json(&spec.to_string(), &LiveState::local()).expect("bench plan")
}

/// Median over `rounds` of the mean time per call in batches of `batch`, in microseconds.
fn time_per_call(rounds: usize, batch: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut per_call = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        per_call.push(t.elapsed().as_secs_f64() * 1e6 / batch as f64);
    }
    per_call.sort_by(f64::total_cmp);
    (per_call[rounds / 2], per_call[rounds * 99 / 100])
}

fn main() {
    let prompt = fixtures::prompt(2048);
    let body = serde_json::to_vec(&serde_json::json!({"model": "MoM", "messages": [
        {"role": "system", "content": "You are helpful."}, {"role": "user", "content": prompt}], "max_tokens": 64}))
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    println!("{:<40} {:>10} {:>10}", "case", "p50 µs", "p99 µs");
    let mut results = serde_json::Map::new();
    for hits in [0usize, 3] {
        let plan = plan(hits);
        let Signal::Keyword(k) = &plan.signals[0] else { panic!("keyword signal expected") };
        assert_eq!(k.keyword_count(), 1000);
        // Check the case takes its intended branch before timing it.
        let r = k.evaluate(&plan, &prompt);
        assert_eq!(r.decided, hits > 0);
        let (p50, p99) = time_per_call(300, 200, || {
            std::hint::black_box(k.evaluate(&plan, std::hint::black_box(&prompt)));
        });
        let name = format!("keyword_2k_1000 ({hits} present)");
        println!("{name:<40} {p50:>10.2} {p99:>10.2}");
        results.insert(name, serde_json::json!({"p50_us": p50, "p99_us": p99}));

        let view = RequestView::parse(ApiKind::Chat, &body).unwrap();
        let d = rt.block_on(decide(&plan, &view, &RequestContext::default())).unwrap();
        assert_eq!(d.category.is_some() && d.classifier.name() == "keyword", hits > 0);
        let (p50, p99) = time_per_call(300, 100, || {
            let mut view = RequestView::parse(ApiKind::Chat, std::hint::black_box(&body)).unwrap();
            let d = rt.block_on(decide(&plan, &view, &RequestContext::default())).unwrap();
            rewrite(&plan, &d, &mut view);
            std::hint::black_box(view.to_bytes());
        });
        let name = format!("request_path_2k ({hits} present)");
        println!("{name:<40} {p50:>10.2} {p99:>10.2}");
        results.insert(name, serde_json::json!({"p50_us": p50, "p99_us": p99}));
    }
    common::write_results("signals_keyword", &results);
}
