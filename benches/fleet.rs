//! What running as a fleet costs: the per-request price of shared state, and whether routers
//! that share nothing but their config agree on where adapters live.
//!
//! Part 1, per request, against one simulator with zero delays (a one-sentence chat request
//! from a tenant, by its alias), each arm's p50/p99 and what it adds over the single-process
//! arm it mirrors:
//! - `single`: one router, state in the process, the tenant without limits (the baseline);
//! - `fleet`: the same with a `redis:` section (run-time records, events, statistics in
//!   Redis); a request makes no Redis round trip (target: at most +5 µs p50 over `single`);
//! - `single+quota`: the tenant with rpm and tpm limits (never binding), counted in process;
//! - `fleet+quota`: the same counted in Redis, one round trip per request (target: at most
//!   +30 µs p50 over `single+quota`);
//! - `fleet+quota/tls`: the same over `rediss://` (skipped without `openssl` on PATH).
//!
//! Cells: concurrency 1, and concurrency 32 at a fixed offered load (routers on core 0;
//! simulator, Redis and load generator on core 1). Arms run interleaved, `--repeats` times
//! (default 3) for `--seconds` (default 4); tables show medians.
//!
//! Part 2, placement agreement (benches/common/placement.rs): the `lora-aware` policy on 4
//! simulators and a Zipf trace, with one router, then with three sharing a Redis and the
//! requests sprayed round-robin over them. Target: three routers need at most 1.1x the
//! adapter loads of one (`--placement-seconds`, default 20; `--skip-placement`).
//!
//! Run: `cargo bench --bench fleet` (needs `lora-router` and `redis-server` on PATH).
//! Options: `--seconds N --repeats N --rate R` (default 2000 req/s), `--skip-overhead`,
//! `--skip-placement`. Results: bench-results/fleet.json.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::loadgen::{self, ArmLoad, LoadResult};
use common::placement::{self, Setup};
use common::{median, procs};
use serde_json::{json, Map, Value};

const KEY: &str = "sk-bench-fleet-0123456789";

fn body() -> Bytes {
    let v = json!({"model": "my-model", "user": "user-42", "max_tokens": 16,
                   "messages": [{"role": "user", "content": "What is the status of invoice 1234?"}]});
    Bytes::from(serde_json::to_vec(&v).unwrap())
}

fn config(sim_port: u16, hash: &str, limits: &str, redis: &str) -> String {
    format!(
        "vllm_endpoints:\n  - {{name: sim, address: 127.0.0.1, port: {sim_port}}}\n\
         model_config:\n  bench-base:\n    loras: [{{name: finance-lora}}]\n\
         default_model: bench-base\n\
         categories:\n  - {{name: general, model_scores: [{{model: bench-base, score: 1.0}}]}}\n\
         tenants:\n  - {{name: acme, api_keys: [\"{hash}\"], adapters: [finance-lora],\n\
         \x20     aliases: {{my-model: finance-lora}}{limits}}}\n\
         server: {{drain_delay_s: 0}}\n\
         {redis}"
    )
}

fn key_hash(bin: &str, key: &str) -> String {
    let out = Command::new(bin).args(["keys", "hash", key]).output().expect("lora-router keys hash");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A CA, and a certificate for 127.0.0.1 it signed, made with the openssl command: (CA file,
/// certificate file, key file), or None without openssl.
fn certificate(dir: &Path) -> Option<(String, String, String)> {
    let p = |name: &str| dir.join(name).display().to_string();
    let (ca, ca_key, cert, key, csr, ext) =
        (p("ca.pem"), p("ca.key"), p("redis.crt"), p("redis.key"), p("redis.csr"), p("san.ext"));
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").ok()?;
    let steps: [Vec<&str>; 3] = [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=bench-ca",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
        ],
        vec!["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", &key, "-out", &csr],
        vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    ];
    for args in steps {
        let ok = Command::new("openssl").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status();
        if !ok.is_ok_and(|s| s.success()) {
            return None;
        }
    }
    Some((ca, cert, key))
}

fn redis(dir: &Path, args: &[String]) -> Child {
    let child = procs::pinned("1", "redis-server", args).current_dir(dir).spawn().expect("redis-server on PATH");
    std::thread::sleep(Duration::from_millis(300));
    child
}

fn main() {
    let opts = common::options();
    let seconds: f64 = opts.get("seconds").map(|s| s.parse().expect("--seconds N")).unwrap_or(4.0);
    let repeats: usize = opts.get("repeats").map(|s| s.parse().expect("--repeats N")).unwrap_or(3);
    let rate: f64 = opts.get("rate").map(|s| s.parse().expect("--rate R")).unwrap_or(2000.0);
    let tmp = std::env::temp_dir().join(format!("lora-router-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let bin = procs::lora_router_bin();
    let adapters = procs::adapter_dirs(&tmp, &["finance-lora"]);
    let sim = procs::spawn_fast_sim(&bin, &adapters);

    let port = procs::free_port();
    let base = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"].map(String::from);
    let mut servers = vec![redis(&tmp, &[vec!["--port".into(), port.to_string()], base.to_vec()].concat())];
    let plain = format!("redis: {{url: \"redis://127.0.0.1:{port}/0\"}}\n");
    let tls = certificate(&tmp).map(|(ca, cert, key)| {
        let tls_port = procs::free_port();
        let args = [
            vec!["--port".into(), "0".into(), "--tls-port".into(), tls_port.to_string()],
            vec!["--tls-cert-file".into(), cert, "--tls-key-file".into(), key, "--tls-auth-clients".into()],
            vec!["no".into()],
            base.to_vec(),
        ]
        .concat();
        servers.push(redis(&tmp, &args));
        format!("redis: {{url: \"rediss://127.0.0.1:{tls_port}/0\", ca_file: \"{ca}\"}}\n")
    });

    let hash = key_hash(&bin, KEY);
    let limits = ", limits: {rpm: 100000000, tpm: 1000000000}";
    let mut variants = vec![
        ("single", config(sim.port, &hash, "", "")),
        ("fleet", config(sim.port, &hash, "", &plain)),
        ("single+quota", config(sim.port, &hash, limits, "")),
        ("fleet+quota", config(sim.port, &hash, limits, &plain)),
    ];
    if let Some(t) = &tls {
        variants.push(("fleet+quota/tls", config(sim.port, &hash, limits, t)));
    }
    let mut routers = Vec::new();
    for (name, cfg) in &variants {
        let path = tmp.join(format!("{}.yaml", name.replace(['+', '/'], "-")));
        std::fs::write(&path, cfg).unwrap();
        let args = ["serve", "--config", &path.display().to_string(), "--host", "127.0.0.1", "--port", "0"];
        routers.push(procs::spawn_announcing(name, "0-1", &bin, &args.map(String::from)));
    }
    std::thread::sleep(Duration::from_millis(1000)); // fleet routers read the store first
    let auth = vec![("authorization".to_string(), format!("Bearer {KEY}"))];
    for (r, (name, _)) in routers.iter().zip(&variants) {
        let got =
            common::response_header_with(&r.addr(), "/v1/chat/completions", &body(), &auth, "x-lora-router-adapter");
        assert_eq!(got.as_deref(), Some("finance-lora"), "{name} does not route");
    }

    let cell = |concurrency: usize, rate: Option<f64>| -> Vec<Vec<LoadResult>> {
        let loads: Vec<ArmLoad> = routers
            .iter()
            .zip(&variants)
            .map(|(r, (name, _))| ArmLoad {
                name: name.to_string(),
                addr: r.addr(),
                body: body(),
                headers: auth.clone(),
                rate,
            })
            .collect();
        loadgen::repeat_arms(&loads, concurrency, seconds, repeats)
    };
    let stat = |rs: &[LoadResult], f: fn(&LoadResult) -> f64| median(&mut rs.iter().map(f).collect::<Vec<_>>());
    // Each fleet arm against the single-process arm it mirrors.
    let baseline = |name: &str| if name.contains("quota") { "single+quota" } else { "single" };

    let mut results = Map::new();
    println!("| cell | arm | p50 µs | p99 µs | added over single process p50 / p99 µs |");
    println!("|---|---|---:|---:|---:|");
    let mut report = |title: String, runs: Vec<Vec<LoadResult>>| {
        let p = |i: usize| (stat(&runs[i], LoadResult::p50), stat(&runs[i], LoadResult::p99));
        let mut out = Map::new();
        for (i, (name, _)) in variants.iter().enumerate() {
            let (p50, p99) = p(i);
            let b = variants.iter().position(|(n, _)| *n == baseline(name)).unwrap();
            let (b50, b99) = p(b);
            let added = if b == i { "-".into() } else { format!("{:.1} / {:.1}", p50 - b50, p99 - b99) };
            println!("| {title} | {name} | {p50:.0} | {p99:.0} | {added} |");
            out.insert(
                name.to_string(),
                json!({"p50_us": p50, "p99_us": p99, "baseline": baseline(name),
                       "added_p50_us": p50 - b50, "added_p99_us": p99 - b99}),
            );
        }
        results.insert(title, Value::Object(out));
    };
    if !opts.contains_key("skip-overhead") {
        report("c=1".into(), cell(1, None));
        let pids: Vec<u32> = routers.iter().map(|r| r.child.id()).collect();
        common::pin_apart(&pids, "0", sim.child.id(), "1");
        report(format!("c=32 @ {rate:.0} req/s"), cell(32, Some(rate)));
        // Back to both cores for the placement runs.
        common::repin(std::process::id(), "0-1");
    }
    drop(routers);
    drop(sim);

    if !opts.contains_key("skip-placement") {
        let mut setup = Setup::from_options(&opts);
        setup.seconds = opts.get("placement-seconds").map(|s| s.parse().expect("a number")).unwrap_or(20.0);
        let shared = json!({"redis": {"url": format!("redis://127.0.0.1:{port}/0"), "prefix": "placement"}});
        println!("\n| routers | adapter loads / 1,000 req | p50 ms | p99 ms | throughput req/s | errors |");
        println!("|---:|---:|---:|---:|---:|---:|");
        let mut placement_results = Map::new();
        let mut loads = Vec::new();
        for n in [1usize, 3] {
            let o = placement::run(&setup, &tmp.join(format!("placement-{n}")), "lora-aware", n, &shared);
            println!(
                "| {n} | {:.0} | {:.1} | {:.1} | {:.0} | {} |",
                o.loads_per_1000, o.p50_ms, o.p99_ms, o.throughput, o.errors
            );
            loads.push(o.loads_per_1000);
            placement_results.insert(format!("{n}_routers"), o.to_json());
        }
        let ratio = loads[1] / loads[0].max(1e-9);
        println!("three routers need {ratio:.2}x the adapter loads of one (target: at most 1.10x)");
        placement_results.insert("ratio_3_to_1".into(), json!(ratio));
        placement_results.insert("setup".into(), setup.to_json());
        results.insert("placement".into(), Value::Object(placement_results));
    }
    results.insert("setup".into(), json!({"seconds": seconds, "repeats": repeats, "rate": rate, "tls": tls.is_some()}));
    common::write_results("fleet", &results);
    for mut s in servers {
        let _ = s.kill();
        let _ = s.wait();
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
