//! What tenants cost per request: key check, A/B assignment and quota check, through the
//! whole router, against a simulator fast enough that the router is what is measured.
//!
//! Arms, on one simulator with zero delays, sending a one-sentence chat request:
//! - `direct`: straight to the simulator (`model: "finance-lora"`);
//! - `plain`: the router without tenants, the same explicit model: the baseline;
//! - `tenants`: the router with two tenants (salted-hash keys), the request naming the
//!   tenant's alias for the control of a sticky experiment (90/10 by the `user` field), with
//!   requests-per-minute and tokens-per-minute limits high enough never to bind, counted in
//!   the process (so every response's usage is read and charged too);
//! - `tenants+redis`: the same with the counters in a local Redis server (`redis-server`
//!   from Debian, started here), one EVAL per request and one INCRBY per response.
//!
//! Columns: each arm's p50/p99 and what it adds over `plain` (target: under 20 µs p50 with
//! counters in the process). Cells: concurrency 1, and concurrency 32 at a fixed offered
//! load (router on core 0; simulator, Redis and load generator on core 1). Every arm runs
//! `--repeats` times (default 3) for `--seconds` (default 4); tables show medians.
//!
//! Run: `cargo bench --bench tenants` (needs `lora-router` and `redis-server` on PATH).
//! Options: `--seconds N --repeats N --rate R` (default 2000 req/s). Results:
//! bench-results/tenants.json.

mod common;

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::loadgen::{self, ArmLoad, LoadResult};
use common::{median, procs};
use serde_json::{json, Map, Value};

const KEY: &str = "sk-bench-acme-0123456789";

fn body(model: &str) -> Bytes {
    let v = json!({"model": model, "user": "user-42", "max_tokens": 16,
                   "messages": [{"role": "user", "content": "What is the status of invoice 1234?"}]});
    Bytes::from(serde_json::to_vec(&v).unwrap())
}

fn config(sim_port: u16, tenants: &str) -> String {
    format!(
        "vllm_endpoints:\n  - {{name: sim, address: 127.0.0.1, port: {sim_port}}}\n\
         model_config:\n  bench-base:\n    loras: [{{name: finance-lora}}, {{name: finance-lora-v2}}, {{name: other-lora}}]\n\
         default_model: bench-base\n\
         categories:\n  - {{name: general, model_scores: [{{model: bench-base, score: 1.0}}]}}\n\
         {tenants}\n"
    )
}

fn tenants(hash: &str, other: &str, quotas: &str) -> String {
    format!(
        "tenants:\n\
         \x20 - {{name: acme, api_keys: [\"{hash}\"], adapters: [finance-lora, finance-lora-v2],\n\
         \x20     aliases: {{my-model: finance-lora}}, limits: {{rpm: 100000000, tpm: 1000000000}}}}\n\
         \x20 - {{name: other, api_keys: [\"{other}\"], adapters: [other-lora]}}\n\
         experiments:\n\
         \x20 - {{name: finance-v2, tenant: acme, sticky_key: user,\n\
         \x20     arms: [{{adapter: finance-lora, weight: 0.9}}, {{adapter: finance-lora-v2, weight: 0.1}}]}}\n\
         {quotas}"
    )
}

fn key_hash(bin: &str, key: &str) -> String {
    let out = Command::new(bin).args(["keys", "hash", key]).output().expect("lora-router keys hash");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn main() {
    let opts = common::options();
    let seconds: f64 = opts.get("seconds").map(|s| s.parse().expect("--seconds N")).unwrap_or(4.0);
    let repeats: usize = opts.get("repeats").map(|s| s.parse().expect("--repeats N")).unwrap_or(3);
    let rate: f64 = opts.get("rate").map(|s| s.parse().expect("--rate R")).unwrap_or(2000.0);
    let tmp = std::env::temp_dir().join(format!("lora-router-tenants-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let bin = procs::lora_router_bin();
    let adapters = procs::adapter_dirs(&tmp, &["finance-lora", "finance-lora-v2", "other-lora"]);
    let sim = procs::spawn_fast_sim(&bin, &adapters);

    let redis_port = procs::free_port();
    let port_arg = redis_port.to_string();
    let redis_args = ["--port", &port_arg, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
    let mut redis =
        procs::pinned("1", "redis-server", &redis_args).current_dir(&tmp).spawn().expect("redis-server on PATH");
    std::thread::sleep(Duration::from_millis(300));

    let (hash, other) = (key_hash(&bin, KEY), key_hash(&bin, "sk-bench-other"));
    let variants = [
        ("plain", String::new(), "finance-lora"),
        ("tenants", tenants(&hash, &other, ""), "my-model"),
        (
            "tenants+redis",
            tenants(&hash, &other, &format!("quotas: {{redis_url: \"redis://127.0.0.1:{redis_port}/0\"}}\n")),
            "my-model",
        ),
    ];
    struct Arm {
        name: &'static str,
        router: Option<procs::Proc>,
        addr: String,
        model: &'static str,
    }
    let mut arms = vec![Arm { name: "direct", router: None, addr: sim.addr(), model: "finance-lora" }];
    for (name, t, model) in variants {
        let path = tmp.join(format!("{name}.yaml"));
        std::fs::write(&path, config(sim.port, &t)).unwrap();
        let args = ["serve", "--config", &path.display().to_string(), "--host", "127.0.0.1", "--port", "0"];
        let router = procs::spawn_announcing(name, "0-1", &bin, &args.map(String::from));
        arms.push(Arm { name, addr: router.addr(), router: Some(router), model });
    }
    let auth = vec![("authorization".to_string(), format!("Bearer {KEY}"))];
    // The tenant arms must really run the experiment.
    for arm in &arms[2..] {
        let got = common::response_header_with(
            &arm.addr,
            "/v1/chat/completions",
            &body(arm.model),
            &auth,
            "x-lora-router-experiment",
        );
        assert!(got.is_some_and(|e| e.starts_with("finance-v2=")), "{} did not assign an arm", arm.name);
    }

    let cell = |concurrency: usize, rate: Option<f64>| -> Vec<Vec<LoadResult>> {
        let loads: Vec<ArmLoad> = arms
            .iter()
            .enumerate()
            .map(|(i, arm)| ArmLoad {
                name: arm.name.into(),
                addr: arm.addr.clone(),
                body: body(arm.model),
                headers: if i >= 2 { auth.clone() } else { vec![] },
                rate,
            })
            .collect();
        loadgen::repeat_arms(&loads, concurrency, seconds, repeats)
    };
    let stat = |rs: &[LoadResult], f: fn(&LoadResult) -> f64| median(&mut rs.iter().map(f).collect::<Vec<_>>());

    let mut results = Map::new();
    println!("| cell | arm | p50 µs | p99 µs | added over plain p50/p99 µs |");
    println!("|---|---|---:|---:|---:|");
    let mut report = |title: String, runs: Vec<Vec<LoadResult>>| {
        let p = |i: usize| (stat(&runs[i], LoadResult::p50), stat(&runs[i], LoadResult::p99));
        let (b50, b99) = p(1);
        let mut out = Map::new();
        for (i, arm) in arms.iter().enumerate() {
            let (p50, p99) = p(i);
            let added = if i >= 2 { format!("{:.1} / {:.1}", p50 - b50, p99 - b99) } else { "-".into() };
            println!("| {title} | {} | {p50:.0} | {p99:.0} | {added} |", arm.name);
            out.insert(
                arm.name.into(),
                json!({"p50_us": p50, "p99_us": p99, "added_over_plain_p50_us": p50 - b50, "added_over_plain_p99_us": p99 - b99}),
            );
        }
        results.insert(title, Value::Object(out));
    };

    report("c=1".into(), cell(1, None));
    let routers: Vec<u32> = arms.iter().filter_map(|a| a.router.as_ref().map(|r| r.child.id())).collect();
    common::pin_apart(&routers, "0", sim.child.id(), "1");
    report(format!("c=32 @ {rate:.0} req/s"), cell(32, Some(rate)));

    results.insert("setup".into(), json!({"seconds": seconds, "repeats": repeats, "rate": rate}));
    common::write_results("tenants", &results);
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&tmp);
}
