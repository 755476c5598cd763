//! Router overhead: latency through a router minus latency direct to the same simulator,
//! measured in one run, with vllm-project/router (`vllm-router`) side by side.
//!
//! The request is a chat request whose user message is 2 KiB. lora-router gets `model: "MoM"`
//! and routes it through 1,000 keyword rules to `technical-lora`; the direct arm and
//! vllm-router (which cannot route by content) send `model: "technical-lora"`. The simulator
//! has zero delays, so the routers are what is measured.
//!
//! Phases:
//! 1. `latency c=1`: one request at a time, processes unpinned (the OS places them; pinning
//!    the router away from the client adds a cross-core wake-up per hop on this VM, for every
//!    router alike). Non-streaming (latency to the end of the body) and streaming (time to
//!    first chunk).
//! 2. `latency c=32 @ R req/s`: 32 workers at a fixed offered load below every arm's capacity,
//!    so all arms are compared at the same throughput. Router pinned to core 0; simulator and
//!    load generator on core 1.
//! 3. `throughput c=32`: 32 workers back to back, router pinned to core 0 with one worker
//!    thread: the most requests per second it can route on one core.
//! 4. Router RSS after the run; the simulator's own requests per second on one core.
//!
//! Each cell runs every arm `--repeats` times (default 3) for `--seconds` (default 4) after a
//! 1 s warm-up; tables show the median of the repeats and the spread of their p50s.
//! Subtracting p99s does not give a router's own p99; it bounds what a client sees.
//!
//! Run: `cargo bench --bench overhead` (needs `lora-router` on PATH, `taskset`; vllm-router is
//! used if `$VLLM_ROUTER_BIN`, ~/.cache/lora-router/bench-venv (`bash benches/setup.sh`) or PATH
//! has it). Options: `--seconds N --repeats N --rate R`. Results: bench-results/overhead.json.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::loadgen::{self, LoadResult, LoadSpec};
use common::{fixtures, median, procs, repin};
use serde_json::{json, Map, Value};

fn vllm_router_bin() -> Option<String> {
    if let Ok(p) = std::env::var("VLLM_ROUTER_BIN") {
        return Some(p);
    }
    let venv = format!("{}/.cache/lora-router/bench-venv/bin/vllm-router", std::env::var("HOME").unwrap_or_default());
    if std::path::Path::new(&venv).exists() {
        return Some(venv);
    }
    let on_path = std::process::Command::new("vllm-router").arg("--help").output();
    on_path.ok().filter(|o| o.status.success()).map(|_| "vllm-router".into())
}

struct Arm<'a> {
    name: &'static str,
    proc: Option<&'a procs::Proc>,
    addr: String,
    model: &'static str,
}

struct Bench {
    seconds: f64,
    repeats: usize,
    prompt: String,
}

impl Bench {
    fn body(&self, model: &str, stream: bool) -> Bytes {
        let v = json!({"model": model, "messages": [{"role": "user", "content": self.prompt}], "max_tokens": 16, "stream": stream});
        Bytes::from(serde_json::to_vec(&v).unwrap())
    }

    /// Runs every arm `repeats` times, interleaved; returns per-arm results.
    fn cell(&self, arms: &[Arm], concurrency: usize, stream: bool, rate: Option<f64>) -> Vec<Vec<LoadResult>> {
        let mut runs: Vec<Vec<LoadResult>> = arms.iter().map(|_| Vec::new()).collect();
        for _ in 0..self.repeats {
            for (i, arm) in arms.iter().enumerate() {
                let r = loadgen::run(&LoadSpec {
                    addr: arm.addr.clone(),
                    path: "/v1/chat/completions",
                    body: self.body(arm.model, stream),
                    headers: vec![],
                    concurrency,
                    warmup: Duration::from_secs(1),
                    duration: Duration::from_secs_f64(self.seconds),
                    first_chunk: stream,
                    rate,
                    variants: None,
                });
                assert!(r.errors == 0 && !r.latencies_us.is_empty(), "{} failed with {} errors", arm.name, r.errors);
                runs[i].push(r);
            }
        }
        runs
    }
}

fn stat(rs: &[LoadResult], f: fn(&LoadResult) -> f64) -> f64 {
    median(&mut rs.iter().map(f).collect::<Vec<_>>())
}

/// Prints one table block and returns its JSON.
fn report(title: &str, arms: &[Arm], runs: &[Vec<LoadResult>]) -> Value {
    let (d50, d99) = (stat(&runs[0], LoadResult::p50), stat(&runs[0], LoadResult::p99));
    let mut out = Map::new();
    for (i, arm) in arms.iter().enumerate() {
        let (p50, p99, rps) =
            (stat(&runs[i], LoadResult::p50), stat(&runs[i], LoadResult::p99), stat(&runs[i], LoadResult::rps));
        let p50s: Vec<f64> = runs[i].iter().map(LoadResult::p50).collect();
        let spread = p50s.iter().cloned().fold(f64::MIN, f64::max) - p50s.iter().cloned().fold(f64::MAX, f64::min);
        let (o50, o99) = if i == 0 {
            ("-".to_string(), "-".to_string())
        } else {
            (format!("{:.0}", p50 - d50), format!("{:.0}", p99 - d99))
        };
        println!("| {title} | {} | {p50:.0} | {p99:.0} | {rps:.0} | {o50} | {o99} | {spread:.0} |", arm.name);
        out.insert(
            arm.name.into(),
            json!({"p50_us": p50, "p99_us": p99, "rps": rps, "overhead_p50_us": p50 - d50, "overhead_p99_us": p99 - d99,
                   "p50_spread_us": spread, "p50s_us": p50s}),
        );
    }
    Value::Object(out)
}

fn pin(arms: &[Arm], router_cpus: &str, sim: &procs::Proc, backend_cpus: &str) {
    let routers: Vec<u32> = arms.iter().filter_map(|a| a.proc.map(|p| p.child.id())).collect();
    common::pin_apart(&routers, router_cpus, sim.child.id(), backend_cpus);
}

fn main() {
    let opts = common::options();
    let bench = Bench {
        seconds: opts.get("seconds").map(|s| s.parse().expect("--seconds N")).unwrap_or(4.0),
        repeats: opts.get("repeats").map(|s| s.parse().expect("--repeats N")).unwrap_or(3),
        prompt: fixtures::prompt(2048),
    };
    let rate: f64 = opts.get("rate").map(|s| s.parse().expect("--rate R")).unwrap_or(4000.0);
    let tmp = std::env::temp_dir().join(format!("lora-router-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let adapters = procs::adapter_dirs(&tmp, &["technical-lora", "medical-lora", "legal-lora", "finance-lora"]);
    let bin = procs::lora_router_bin();

    let sim = procs::spawn_fast_sim(&bin, &adapters);

    let categories: String = ["technical", "medical", "legal", "finance"]
        .iter()
        .map(|c| format!("  - {{name: {c}, system_prompt: \"You are an expert.\", model_scores: [{{model: bench-base, lora_name: {c}-lora, score: 1.0, use_reasoning: true}}]}}\n"))
        .collect();
    let loras = adapters.iter().map(|(n, _)| format!("{{name: {n}}}")).collect::<Vec<_>>().join(", ");
    let config = format!(
        "vllm_endpoints:\n  - {{name: sim, address: 127.0.0.1, port: {}}}\nmodel_config:\n  bench-base:\n    reasoning_family: qwen3\n    loras: [{loras}]\ndefault_model: bench-base\ncategories:\n{categories}  - {{name: general, model_scores: [{{model: bench-base, score: 0.5}}]}}\n{}",
        sim.port,
        fixtures::keyword_rules_yaml(1000, 3),
    );
    let cfg_path = tmp.join("router.yaml");
    std::fs::write(&cfg_path, config).unwrap();
    let serve =
        ["serve", "--config", &cfg_path.display().to_string(), "--host", "127.0.0.1", "--port", "0", "--threads", "1"];
    let router = procs::spawn_announcing("lora-router", "0-1", &bin, &serve.map(String::from));
    let vllm_router = vllm_router_bin().map(|b| {
        let port = procs::free_port();
        let args = [
            "--worker-urls",
            &format!("http://127.0.0.1:{}", sim.port),
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--policy",
            "round_robin",
            "--log-level",
            "warning",
            "--max-concurrent-requests",
            "4096",
            "--queue-size",
            "4096",
            "--prometheus-port",
            &procs::free_port().to_string(),
        ];
        procs::spawn_polled("vllm-router", "0-1", &b, &args.map(String::from), port, "/health")
    });

    let mut arms = vec![
        Arm { name: "direct", proc: None, addr: sim.addr(), model: "technical-lora" },
        Arm { name: "lora-router", proc: Some(&router), addr: router.addr(), model: "MoM" },
    ];
    if let Some(v) = &vllm_router {
        arms.push(Arm { name: "vllm-router", proc: Some(v), addr: v.addr(), model: "technical-lora" });
    }
    let mut results = Map::new();
    println!("| cell | arm | p50 µs | p99 µs | req/s | overhead p50 µs | overhead p99 µs | spread p50 µs |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");

    pin(&arms, "0-1", &sim, "0-1");
    for stream in [false, true] {
        let title = format!("latency c=1 {}", if stream { "stream, first chunk" } else { "non-stream" });
        let runs = bench.cell(&arms, 1, stream, None);
        results.insert(title.clone(), report(&title, &arms, &runs));
    }
    pin(&arms, "0", &sim, "1");
    for stream in [false, true] {
        let title =
            format!("latency c=32 @ {rate:.0} req/s {}", if stream { "stream, first chunk" } else { "non-stream" });
        let runs = bench.cell(&arms, 32, stream, Some(rate));
        results.insert(title.clone(), report(&title, &arms, &runs));
    }
    for stream in [false, true] {
        let title = format!("throughput c=32, router on 1 core {}", if stream { "stream" } else { "non-stream" });
        let runs = bench.cell(&arms, 32, stream, None);
        results.insert(title.clone(), report(&title, &arms, &runs));
    }

    let rss = router.rss_mib();
    println!("\nlora-router RSS after the run: {rss:.1} MiB");
    results.insert("lora_router_rss_mib".into(), json!(rss));
    if let Some(v) = &vllm_router {
        println!("vllm-router RSS after the run: {:.1} MiB", v.rss_mib());
        results.insert("vllm_router_rss_mib".into(), json!(v.rss_mib()));
    }
    drop(arms);
    drop(vllm_router);
    drop(router);

    // The simulator alone on core 0, the load generator on core 1.
    repin(sim.child.id(), "0");
    let r = loadgen::run(&LoadSpec {
        addr: sim.addr(),
        path: "/v1/chat/completions",
        body: Bytes::from(serde_json::to_vec(&json!({"model": "technical-lora", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16})).unwrap()),
        headers: vec![],
        concurrency: 32,
        warmup: Duration::from_secs(1),
        duration: Duration::from_secs_f64(bench.seconds),
        first_chunk: false,
        rate: None,
        variants: None,
    });
    println!("simulator on one core, c=32, short chat request: {:.0} requests/s (p50 {:.0} µs)", r.rps(), r.p50());
    results.insert("simulator_rps_one_core".into(), json!(r.rps()));
    drop(sim);

    results.insert(
        "setup".into(),
        json!({"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "seconds": bench.seconds,
               "repeats": bench.repeats, "rate": rate, "prompt_bytes": bench.prompt.len(), "keywords": 1000}),
    );
    common::write_results("overhead", &results);
    let _ = std::fs::remove_dir_all(&tmp);
}
