//! Replica placement policies side by side, on simulated vLLM replicas: how many adapter loads
//! each needs, and the latency and throughput it gets.
//!
//! Setup (defaults; options below): 4 simulators, each `--max-loras 4`, `--max-num-seqs 16`,
//! time to first token 20 ms, 5 ms per token, 16 tokens per request (about 100 ms), 50 ms to
//! load an adapter into a GPU slot; 64 adapters, every one served by every replica
//! (`--lora-modules`), so each policy may send any request anywhere. Requests name an adapter
//! drawn from a Zipf distribution (s = 1.0, the same seeded sequence for every policy) and
//! arrive at a steady rate near capacity. For each policy the simulators and the router start
//! fresh; after a warm-up, loads are the simulators' own count of adapters brought into a slot
//! (`lora_router_sim:lora_loads_total`) during the measured window.
//!
//! Policies: `lora-aware` (ours), `round-robin`, `least-loaded`, `ray-multiplex` (Ray Serve
//! LLM's rule), `llm-d-affinity` (the GIE/llm-d LoRA affinity rule); replicas/select.rs.
//!
//! Run: `cargo bench --bench placement` (needs `lora-router` on PATH). Options: `--seconds N`
//! (measured, default 20) `--warmup N` (default 5) `--rate R` (req/s, default 210: near what the best policies carry here) `--adapters N`
//! `--replicas N` `--max-loras N` `--zipf S` `--policies a,b`. Results: bench-results/placement.json.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::loadgen::{self, LoadSpec};
use common::procs;
use lora_router::util::rng::SeededRng;
use serde_json::{json, Map, Value};

const POLICIES: &[&str] = &["lora-aware", "round-robin", "least-loaded", "ray-multiplex", "llm-d-affinity"];

struct Setup {
    replicas: usize,
    adapters: usize,
    max_loras: usize,
    zipf: f64,
    rate: f64,
    warmup: f64,
    seconds: f64,
}

/// `n` adapter names drawn from Zipf(s) over `adapters` ranks, seeded.
fn zipf_sequence(adapters: usize, s: f64, n: usize, seed: u64) -> Vec<usize> {
    let weights: Vec<f64> = (1..=adapters).map(|k| 1.0 / (k as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(adapters);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut rng = SeededRng::new(seed);
    (0..n).map(|_| cdf.partition_point(|&c| c < rng.next_f64()).min(adapters - 1)).collect()
}

fn sim_loads(addr: &str) -> f64 {
    let text = common::get_text(addr, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("lora_router_sim:lora_loads_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

fn main() {
    let opts = common::options();
    let get = |k: &str, d: f64| opts.get(k).map(|s| s.parse().expect("a number")).unwrap_or(d);
    let setup = Setup {
        replicas: get("replicas", 4.0) as usize,
        adapters: get("adapters", 64.0) as usize,
        max_loras: get("max-loras", 4.0) as usize,
        zipf: get("zipf", 1.0),
        rate: get("rate", 210.0),
        warmup: get("warmup", 5.0),
        seconds: get("seconds", 20.0),
    };
    let policies: Vec<String> = opts
        .get("policies")
        .map(|p| p.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| POLICIES.iter().map(|p| p.to_string()).collect());
    let tmp = std::env::temp_dir().join(format!("lora-router-placement-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let names: Vec<String> = (0..setup.adapters).map(|i| format!("lora-{i:02}")).collect();
    let dirs = procs::adapter_dirs(&tmp, &names.iter().map(String::as_str).collect::<Vec<_>>());
    let bin = procs::lora_router_bin();

    let total = ((setup.warmup + setup.seconds + 5.0) * setup.rate * 1.2) as usize;
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        zipf_sequence(setup.adapters, setup.zipf, total, 42)
            .into_iter()
            .map(|i| {
                let v = json!({"model": names[i], "messages": [{"role": "user", "content": "Summarise the ticket."}],
                               "max_tokens": 16});
                Bytes::from(serde_json::to_vec(&v).unwrap())
            })
            .collect(),
    );

    println!(
        "{} replicas x max_loras {}, {} adapters Zipf s={}, {:.0} req/s offered, {:.0} s measured after {:.0} s",
        setup.replicas, setup.max_loras, setup.adapters, setup.zipf, setup.rate, setup.seconds, setup.warmup
    );
    println!("| policy | adapter loads / 1,000 req | p50 ms | p99 ms | throughput req/s | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut results = Map::new();
    for policy in &policies {
        let mut sim_args: Vec<String> = ["sim", "--port", "0", "--served-model-name", "bench-base"]
            .into_iter()
            .chain(["--max-num-seqs", "16", "--ttft-ms", "20", "--itl-ms", "5", "--lora-load-ms", "50"])
            .chain(["--default-max-tokens", "16", "--record-requests", "0", "--threads", "1"])
            .map(String::from)
            .collect();
        sim_args.extend(["--max-loras".to_string(), setup.max_loras.to_string(), "--lora-modules".to_string()]);
        sim_args.extend(dirs.iter().map(|(n, p)| format!("{n}={p}")));
        let sims: Vec<procs::Proc> =
            (0..setup.replicas).map(|_| procs::spawn_announcing("sim", "0-1", &bin, &sim_args)).collect();
        let endpoints: Vec<Value> = sims
            .iter()
            .enumerate()
            .map(|(i, s)| json!({"name": format!("r{i}"), "address": "127.0.0.1", "port": s.port, "max_loras": setup.max_loras}))
            .collect();
        let cfg = json!({
            "vllm_endpoints": endpoints,
            "model_config": {"bench-base": {"loras": names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()}},
            "default_model": "bench-base",
            "placement": {"policy": policy},
            "server": {"health_check": {"interval_s": 0.25, "timeout_s": 0.5}},
        });
        let path = tmp.join(format!("{policy}.yaml"));
        std::fs::write(&path, serde_json::to_string(&cfg).unwrap()).unwrap();
        let router = procs::spawn_announcing(
            policy,
            "0-1",
            &bin,
            &["serve", "--config", &path.display().to_string(), "--host", "127.0.0.1", "--port", "0"].map(String::from),
        );
        std::thread::sleep(Duration::from_millis(1500)); // first sync of every replica

        // One run: the warm-up fills the slots (and spreads the paced workers' starts); the
        // simulators' load counts are read as the measured window opens and when it closes.
        let spec = LoadSpec {
            addr: router.addr(),
            path: "/v1/chat/completions",
            body: Bytes::new(),
            headers: vec![],
            concurrency: 256,
            warmup: Duration::from_secs_f64(setup.warmup),
            duration: Duration::from_secs_f64(setup.seconds),
            first_chunk: false,
            rate: Some(setup.rate),
            variants: Some(bodies.clone()),
        };
        let addrs: Vec<String> = sims.iter().map(|s| s.addr()).collect();
        let (warmup, seconds) = (setup.warmup, setup.seconds);
        let counts = std::thread::spawn(move || {
            let total = || addrs.iter().map(|a| sim_loads(a)).sum::<f64>();
            std::thread::sleep(Duration::from_secs_f64(warmup));
            let before = total();
            std::thread::sleep(Duration::from_secs_f64(seconds));
            (before, total())
        });
        let r = loadgen::run(&spec);
        let (before, after) = counts.join().unwrap();
        let elapsed = setup.seconds;
        let done = r.latencies_us.len() as f64;
        let loads_per_1000 = (after - before) / done.max(1.0) * 1000.0;
        let (p50, p99) = (r.p50() / 1000.0, r.p99() / 1000.0);
        let throughput = done / elapsed;
        println!("| {policy} | {loads_per_1000:.0} | {p50:.1} | {p99:.1} | {throughput:.0} | {} |", r.errors);
        results.insert(
            policy.clone(),
            json!({"loads_per_1000": loads_per_1000, "p50_ms": p50, "p99_ms": p99, "throughput_rps": throughput,
                   "errors": r.errors, "requests": done}),
        );
        drop(router);
        drop(sims);
    }
    results.insert(
        "setup".into(),
        json!({"replicas": setup.replicas, "adapters": setup.adapters, "max_loras": setup.max_loras, "zipf": setup.zipf,
               "rate": setup.rate, "warmup_s": setup.warmup, "seconds": setup.seconds,
               "sim": {"max_num_seqs": 16, "ttft_ms": 20, "itl_ms": 5, "tokens": 16, "lora_load_ms": 50}}),
    );
    common::write_results("placement", &results);
    let _ = std::fs::remove_dir_all(&tmp);
}
