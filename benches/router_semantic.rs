//! The embedding classifier through the whole router: added latency for a typical chat
//! request (a one-sentence question, 20-30 tokens) routed with `model: "MoM"` by meaning,
//! against the same request sent straight to the simulator; the router's own
//! `x-lora-router-routing-us`; and the router's RSS with each shipped encoder.
//!
//! Setup: the six-domain config of benches/data/domains_en_zh.jsonl (120 examples), the
//! simulator with zero delays, concurrency 1, processes unpinned, default router settings.
//! Run: `cargo bench --bench router_semantic` (needs `lora-router` on PATH and the models
//! built; target: decision overhead under 5 ms p50; RSS under 500 MB with
//! multilingual-e5-small and 150 MB with all-minilm-l6-v2).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::loadgen::{self, LoadSpec};
use common::procs;
use serde_json::{json, Value};

const QUESTIONS: &[&str] = &[
    "My borrow checker keeps complaining about a mutable reference inside a loop",
    "I've had a sore throat and swollen glands for about a week now",
    "My landlord won't return my deposit even though I left the flat clean",
    "我的程序一运行就报空指针异常，怎么排查？",
];

fn routing_us(addr: &str, body: &[u8]) -> u64 {
    common::response_header(addr, "/v1/chat/completions", body, "x-lora-router-routing-us")
        .and_then(|v| v.parse().ok())
        .expect("routing-us header")
}

fn main() {
    let opts = common::options();
    let seconds: f64 = opts.get("seconds").map(|s| s.parse().unwrap()).unwrap_or(4.0);
    let tmp = std::env::temp_dir().join(format!("lora-router-sem-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let rows: Vec<Value> =
        include_str!("data/domains_en_zh.jsonl").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let labels = ["finance", "general", "legal", "math", "medical", "technical"];
    let adapters: Vec<String> = labels.iter().filter(|l| **l != "general").map(|l| format!("{l}-lora")).collect();
    let dirs = procs::adapter_dirs(&tmp, &adapters.iter().map(String::as_str).collect::<Vec<_>>());
    let bin = procs::lora_router_bin();
    let sim = procs::spawn_fast_sim(&bin, &dirs);

    let mut results = serde_json::Map::new();
    println!("| encoder | direct p50 µs | router p50 µs | added p50 ms | added p99 ms | routing-us p50 | RSS MiB |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for encoder in ["multilingual-e5-small", "all-minilm-l6-v2"] {
        let categories: Vec<Value> = labels
            .iter()
            .map(|l| {
                let examples: Vec<&str> = rows
                    .iter()
                    .filter(|r| r["label"] == *l && r["split"] == "train")
                    .map(|r| r["text"].as_str().unwrap())
                    .collect();
                let scores = if *l == "general" {
                    json!([{"model": "bench-base", "score": 1.0}])
                } else {
                    json!([{"model": "bench-base", "lora_name": format!("{l}-lora"), "score": 1.0}])
                };
                json!({"name": l, "examples": examples, "model_scores": scores})
            })
            .collect();
        let cfg = json!({
            "vllm_endpoints": [{"name": "sim", "address": "127.0.0.1", "port": sim.port}],
            "model_config": {"bench-base": {"loras": adapters.iter().map(|a| json!({"name": a})).collect::<Vec<_>>()}},
            "default_model": "bench-base",
            "categories": categories,
            "classifier": {"embedding_model": {"model": encoder}},
        });
        let path = tmp.join(format!("{encoder}.yaml"));
        std::fs::write(&path, serde_json::to_string(&cfg).unwrap()).unwrap();
        let router = procs::spawn_announcing(
            encoder,
            "0-1",
            &bin,
            &["serve", "--config", &path.display().to_string(), "--host", "127.0.0.1", "--port", "0"].map(String::from),
        );
        let mut direct = Vec::new();
        let mut routed = Vec::new();
        let mut header = Vec::new();
        for q in QUESTIONS {
            let body = |model: &str| {
                Bytes::from(
                    serde_json::to_vec(
                        &json!({"model": model, "messages": [{"role": "user", "content": q}], "max_tokens": 16}),
                    )
                    .unwrap(),
                )
            };
            header.push(routing_us(&router.addr(), &body("MoM")));
            let spec = |addr: String, b: Bytes| LoadSpec {
                addr,
                path: "/v1/chat/completions",
                body: b,
                headers: vec![],
                concurrency: 1,
                warmup: Duration::from_millis(500),
                duration: Duration::from_secs_f64(seconds / QUESTIONS.len() as f64),
                first_chunk: false,
                rate: None,
                variants: None,
            };
            direct.extend(loadgen::run(&spec(sim.addr(), body("technical-lora"))).latencies_us);
            routed.extend(loadgen::run(&spec(router.addr(), body("MoM"))).latencies_us);
        }
        direct.sort_unstable();
        routed.sort_unstable();
        header.sort_unstable();
        let (d50, r50, r99, d99) = (
            common::percentile(&direct, 0.5),
            common::percentile(&routed, 0.5),
            common::percentile(&routed, 0.99),
            common::percentile(&direct, 0.99),
        );
        let rss = router.rss_mib();
        println!(
            "| {encoder} | {d50:.0} | {r50:.0} | {:.2} | {:.2} | {} | {rss:.0} |",
            (r50 - d50) / 1000.0,
            (r99 - d99) / 1000.0,
            header[header.len() / 2]
        );
        results.insert(
            encoder.into(),
            json!({"direct_p50_us": d50, "router_p50_us": r50, "added_p50_ms": (r50 - d50) / 1000.0,
            "added_p99_ms": (r99 - d99) / 1000.0, "routing_us_p50": header[header.len() / 2], "rss_mib": rss}),
        );
    }
    drop(sim);
    common::write_results("router_semantic", &results);
    let _ = std::fs::remove_dir_all(&tmp);
}
