//! One placement run, shared by the placement and fleet benches: fresh simulators (every
//! adapter served by every replica, so any policy may send any request anywhere), one or
//! more routers in front of them, and a seeded Zipf trace of explicit adapter requests at a
//! steady rate, sprayed round-robin over the routers. Adapter loads are the simulators' own
//! count of adapters brought into a GPU slot during the measured window.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lora_router::util::rng::SeededRng;
use serde_json::{json, Value};

use super::loadgen::{self, LoadSpec};
use super::procs;

pub struct Setup {
    pub replicas: usize,
    pub adapters: usize,
    pub max_loras: usize,
    pub zipf: f64,
    pub rate: f64,
    pub warmup: f64,
    pub seconds: f64,
}

impl Setup {
    pub fn from_options(opts: &std::collections::HashMap<String, String>) -> Setup {
        let get = |k: &str, d: f64| opts.get(k).map(|s| s.parse().expect("a number")).unwrap_or(d);
        Setup {
            replicas: get("replicas", 4.0) as usize,
            adapters: get("adapters", 64.0) as usize,
            max_loras: get("max-loras", 4.0) as usize,
            zipf: get("zipf", 1.0),
            rate: get("rate", 210.0),
            warmup: get("warmup", 5.0),
            seconds: get("seconds", 20.0),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"replicas": self.replicas, "adapters": self.adapters, "max_loras": self.max_loras, "zipf": self.zipf,
               "rate": self.rate, "warmup_s": self.warmup, "seconds": self.seconds,
               "sim": {"max_num_seqs": 16, "ttft_ms": 20, "itl_ms": 5, "tokens": 16, "lora_load_ms": 50}})
    }
}

/// `n` adapter indexes drawn from Zipf(s) over `adapters` ranks, seeded.
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
    let text = super::get_text(addr, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("lora_router_sim:lora_loads_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

pub struct Outcome {
    pub loads_per_1000: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub throughput: f64,
    pub errors: usize,
    pub requests: f64,
}

impl Outcome {
    pub fn to_json(&self) -> Value {
        json!({"loads_per_1000": self.loads_per_1000, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms,
               "throughput_rps": self.throughput, "errors": self.errors, "requests": self.requests})
    }
}

/// Runs `policy` with `routers` routers (each given `extra` config sections) on fresh
/// simulators in `tmp`.
pub fn run(setup: &Setup, tmp: &std::path::Path, policy: &str, routers: usize, extra: &Value) -> Outcome {
    let names: Vec<String> = (0..setup.adapters).map(|i| format!("lora-{i:02}")).collect();
    let dirs = procs::adapter_dirs(tmp, &names.iter().map(String::as_str).collect::<Vec<_>>());
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
    let mut cfg = json!({
        "vllm_endpoints": endpoints,
        "model_config": {"bench-base": {"loras": names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()}},
        "default_model": "bench-base",
        "placement": {"policy": policy},
        "server": {"health_check": {"interval_s": 0.25, "timeout_s": 0.5}, "drain_delay_s": 0},
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        cfg[k] = v.clone();
    }
    let path = tmp.join(format!("{policy}-{routers}.yaml"));
    std::fs::write(&path, serde_json::to_string(&cfg).unwrap()).unwrap();
    let args =
        ["serve", "--config", &path.display().to_string(), "--host", "127.0.0.1", "--port", "0"].map(String::from);
    let fleet: Vec<procs::Proc> = (0..routers).map(|_| procs::spawn_announcing(policy, "0-1", &bin, &args)).collect();
    std::thread::sleep(Duration::from_millis(1500)); // first sync of every replica

    // One run: the warm-up fills the slots (and spreads the paced workers' starts); the
    // simulators' load counts are read as the measured window opens and when it closes.
    let spec = LoadSpec {
        addr: fleet.iter().map(procs::Proc::addr).collect::<Vec<_>>().join(","),
        path: "/v1/chat/completions",
        body: Bytes::new(),
        headers: vec![],
        concurrency: 256,
        warmup: Duration::from_secs_f64(setup.warmup),
        duration: Duration::from_secs_f64(setup.seconds),
        first_chunk: false,
        rate: Some(setup.rate),
        variants: Some(bodies),
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
    let done = r.latencies_us.len() as f64;
    drop(fleet);
    drop(sims);
    Outcome {
        loads_per_1000: (after - before) / done.max(1.0) * 1000.0,
        p50_ms: r.p50() / 1000.0,
        p99_ms: r.p99() / 1000.0,
        throughput: done / setup.seconds,
        errors: r.errors,
        requests: done,
    }
}
