//! Classifiers that run in Python, through the whole router: what a trivial custom classifier
//! (sync and async) and the MCP classifier over stdio add to a request.
//!
//! Arms, all on one simulator with zero delays, sending a one-sentence chat request:
//! - `direct`: straight to the simulator (`model: "technical-lora"`);
//! - `keyword`: the router choosing by one keyword rule (`model: "MoM"`): the router's own
//!   cost, the baseline for the classifier arms;
//! - `custom sync`, `custom async`: the router choosing by benches/data/trivial_classifier.py;
//! - `mcp stdio`: the router choosing by benches/data/trivial_mcp_server.py over stdio
//!   (cache off: every request is a tool call).
//!
//! Columns: each arm's p50/p99, what it adds over `direct`, and what the classifier adds over
//! `keyword` (target: a trivial Python classifier under 100 µs p50). Cells: concurrency 1
//! (processes unpinned), and concurrency 32 at a fixed offered load (router on core 0,
//! simulator and load generator on core 1, the MCP server on either). Each cell runs every arm `--repeats` times
//! (default 3) for `--seconds` (default 4); tables show medians of the repeats.
//!
//! Run: `cargo bench --bench router_python` (needs `lora-router` on PATH with its Python
//! package). Options: `--seconds N --repeats N --rate R` (default 1000 req/s) `--mcp-rate R`
//! (default 250 req/s: the MCP arm's offered load at c=32, below what the `mcp` SDK's client
//! and server carry on this machine, about 1,200 calls/s back to back, Python alone).
//! Results: bench-results/router_python.json.

mod common;

use bytes::Bytes;
use common::loadgen::{self, ArmLoad, LoadResult};
use common::{median, procs};
use serde_json::{json, Map, Value};

const QUESTION: &str = "How do I read a file line by line in Python without loading it all into memory?";

struct Arm {
    name: &'static str,
    router: Option<procs::Proc>,
    addr: String,
    model: &'static str,
}

fn body(model: &str) -> Bytes {
    let v = json!({"model": model, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 16});
    Bytes::from(serde_json::to_vec(&v).unwrap())
}

/// The router config for one arm: the shared part plus its classifier.
fn config(sim_port: u16, classifier: &str) -> String {
    format!(
        "vllm_endpoints:\n  - {{name: sim, address: 127.0.0.1, port: {sim_port}}}\n\
         model_config:\n  bench-base:\n    loras: [{{name: technical-lora}}]\n\
         default_model: bench-base\n\
         categories:\n  - {{name: technical, model_scores: [{{model: bench-base, lora_name: technical-lora, score: 1.0}}]}}\n  \
         - {{name: general, model_scores: [{{model: bench-base, score: 1.0}}]}}\n\
         {classifier}\n"
    )
}

fn main() {
    let opts = common::options();
    let seconds: f64 = opts.get("seconds").map(|s| s.parse().expect("--seconds N")).unwrap_or(4.0);
    let repeats: usize = opts.get("repeats").map(|s| s.parse().expect("--repeats N")).unwrap_or(3);
    let rate: f64 = opts.get("rate").map(|s| s.parse().expect("--rate R")).unwrap_or(1000.0);
    let mcp_rate: f64 = opts.get("mcp-rate").map(|s| s.parse().expect("--mcp-rate R")).unwrap_or(250.0);
    let tmp = std::env::temp_dir().join(format!("lora-router-py-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data");
    let adapters = procs::adapter_dirs(&tmp, &["technical-lora"]);
    // The router imports a custom classifier from its config's directory.
    std::fs::copy(data.join("trivial_classifier.py"), tmp.join("trivial_classifier.py")).unwrap();
    let bin = procs::lora_router_bin();

    let sim = procs::spawn_fast_sim(&bin, &adapters);

    let classifiers: [(&str, String); 4] = [
        ("keyword", "keyword_rules:\n  - {category: technical, keywords: [python]}".into()),
        (
            "custom sync",
            "classifier:\n  custom:\n    - {name: trivial, entrypoint: \"trivial_classifier:classify\"}".into(),
        ),
        (
            "custom async",
            "classifier:\n  custom:\n    - {name: trivial, entrypoint: \"trivial_classifier:classify_async\"}".into(),
        ),
        (
            "mcp stdio",
            format!(
                "classifier:\n  mcp_category_model:\n    {{enabled: true, command: python, args: [{:?}], timeout_seconds: 5}}",
                data.join("trivial_mcp_server.py").display().to_string()
            ),
        ),
    ];
    let mut arms = vec![Arm { name: "direct", router: None, addr: sim.addr(), model: "technical-lora" }];
    for (name, classifier) in classifiers {
        let path = tmp.join(format!("{}.yaml", name.replace(' ', "-")));
        std::fs::write(&path, config(sim.port, &classifier)).unwrap();
        let args = ["serve", "--config", &path.display().to_string(), "--host", "127.0.0.1", "--port", "0"];
        let router = procs::spawn_announcing(name, "0-1", &bin, &args.map(String::from));
        arms.push(Arm { name, addr: router.addr(), router: Some(router), model: "MoM" });
    }

    // Every arm must route by its classifier: a classifier that abstains would measure the
    // fallback instead.
    for (arm, expected) in arms[1..].iter().zip(["keyword", "custom:trivial", "custom:trivial", "mcp"]) {
        let got = common::response_header(&arm.addr, "/v1/chat/completions", &body("MoM"), "x-lora-router-classifier")
            .unwrap_or_default();
        assert_eq!(got, expected, "{} routed by {got}", arm.name);
    }

    let cell = |concurrency: usize, rate: Option<(f64, f64)>| -> Vec<Vec<LoadResult>> {
        let loads: Vec<ArmLoad> = arms
            .iter()
            .map(|arm| ArmLoad {
                name: arm.name.into(),
                addr: arm.addr.clone(),
                body: body(arm.model),
                headers: vec![],
                rate: rate.map(|(others, mcp)| if arm.name == "mcp stdio" { mcp } else { others }),
            })
            .collect();
        loadgen::repeat_arms(&loads, concurrency, seconds, repeats)
    };
    let stat = |rs: &[LoadResult], f: fn(&LoadResult) -> f64| median(&mut rs.iter().map(f).collect::<Vec<_>>());

    let mut results = Map::new();
    println!("| cell | arm | p50 µs | p99 µs | added over direct p50/p99 µs | added over keyword p50/p99 µs |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut report = |title: String, runs: Vec<Vec<LoadResult>>| {
        let p = |i: usize| (stat(&runs[i], LoadResult::p50), stat(&runs[i], LoadResult::p99));
        let ((d50, d99), (k50, k99)) = (p(0), p(1));
        let mut out = Map::new();
        for (i, arm) in arms.iter().enumerate() {
            let (p50, p99) = p(i);
            let over_keyword = if i >= 2 { format!("{:.0} / {:.0}", p50 - k50, p99 - k99) } else { "-".into() };
            let over_direct = if i >= 1 { format!("{:.0} / {:.0}", p50 - d50, p99 - d99) } else { "-".into() };
            println!("| {title} | {} | {p50:.0} | {p99:.0} | {over_direct} | {over_keyword} |", arm.name);
            out.insert(
                arm.name.into(),
                json!({"p50_us": p50, "p99_us": p99, "added_over_direct_p50_us": p50 - d50,
                       "added_over_direct_p99_us": p99 - d99, "added_over_keyword_p50_us": p50 - k50,
                       "added_over_keyword_p99_us": p99 - k99}),
            );
        }
        results.insert(title, Value::Object(out));
    };

    report("c=1".into(), cell(1, None));
    let routers: Vec<u32> = arms.iter().filter_map(|a| a.router.as_ref().map(|r| r.child.id())).collect();
    common::pin_apart(&routers, "0", sim.child.id(), "1");
    report(format!("c=32 @ {rate:.0} req/s (mcp {mcp_rate:.0})"), cell(32, Some((rate, mcp_rate))));

    for arm in &arms {
        if let Some(r) = &arm.router {
            println!("{} router RSS: {:.0} MiB", arm.name, r.rss_mib());
        }
    }
    results.insert("setup".into(), json!({"seconds": seconds, "repeats": repeats, "rate": rate, "mcp_rate": mcp_rate}));
    common::write_results("router_python", &results);
    let _ = std::fs::remove_dir_all(&tmp);
}
