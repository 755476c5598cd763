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
//! (measured, default 20) `--warmup N` (default 5) `--rate R` (req/s, default 210: near what
//! the best policies carry here) `--adapters N` `--replicas N` `--max-loras N` `--zipf S`
//! `--policies a,b` `--routers N` (default 1: requests are sprayed round-robin over N routers,
//! which agree on homes with no shared state). Results: bench-results/placement.json.

mod common;

use common::placement::{self, Setup};
use serde_json::{json, Map};

const POLICIES: &[&str] = &["lora-aware", "round-robin", "least-loaded", "ray-multiplex", "llm-d-affinity"];

fn main() {
    let opts = common::options();
    let setup = Setup::from_options(&opts);
    let routers: usize = opts.get("routers").map(|s| s.parse().expect("--routers N")).unwrap_or(1);
    let policies: Vec<String> = opts
        .get("policies")
        .map(|p| p.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| POLICIES.iter().map(|p| p.to_string()).collect());
    let tmp = std::env::temp_dir().join(format!("lora-router-placement-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    println!(
        "{} replicas x max_loras {}, {} adapters Zipf s={}, {:.0} req/s offered over {routers} router(s), {:.0} s measured after {:.0} s",
        setup.replicas, setup.max_loras, setup.adapters, setup.zipf, setup.rate, setup.seconds, setup.warmup
    );
    println!("| policy | adapter loads / 1,000 req | p50 ms | p99 ms | throughput req/s | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut results = Map::new();
    for policy in &policies {
        let o = placement::run(&setup, &tmp, policy, routers, &json!({}));
        println!(
            "| {policy} | {:.0} | {:.1} | {:.1} | {:.0} | {} |",
            o.loads_per_1000, o.p50_ms, o.p99_ms, o.throughput, o.errors
        );
        results.insert(policy.clone(), o.to_json());
    }
    let mut setup_json = setup.to_json();
    setup_json["routers"] = json!(routers);
    results.insert("setup".into(), setup_json);
    common::write_results("placement", &results);
    let _ = std::fs::remove_dir_all(&tmp);
}
