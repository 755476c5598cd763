//! Shared by the benches: seeded inputs (the 2 KiB prompt, keyword sets), a closed-loop HTTP
//! load generator, and helpers to start `lora-router` processes pinned to CPU cores.
#![allow(dead_code)]

pub mod fixtures;
pub mod loadgen;
pub mod placement;
pub mod procs;

use std::time::Duration;

/// Percentile of a sorted slice of microseconds.
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[idx.min(sorted.len() - 1)])
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// `--key value` pairs from the command line (cargo's own `--bench` flag is skipped).
pub fn options() -> std::collections::HashMap<String, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::collections::HashMap::new();
    let mut i = 0;
    while i < argv.len() {
        if let Some(key) = argv[i].strip_prefix("--") {
            if let Some(value) = argv.get(i + 1).filter(|v| !v.starts_with("--")) {
                out.insert(key.to_string(), value.clone());
                i += 1;
            } else {
                out.insert(key.to_string(), String::new());
            }
        }
        i += 1;
    }
    out
}

/// A number in [0, 1), different on each call.
pub fn jitter() -> f64 {
    lora_router::util::rng::next_f64()
}

/// Pins a running process and all its threads to `cpus`.
pub fn repin(pid: u32, cpus: &str) {
    let _ = std::process::Command::new("taskset")
        .args(["-a", "-cp", cpus, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status();
}

/// Pins the routers to `router_cpus`, and the backend and this process (the load
/// generator) to `backend_cpus`, so the router has its cores to itself.
pub fn pin_apart(routers: &[u32], router_cpus: &str, backend: u32, backend_cpus: &str) {
    for &pid in routers {
        repin(pid, router_cpus);
    }
    repin(backend, backend_cpus);
    repin(std::process::id(), backend_cpus);
}

/// Writes a bench's results to bench-results/<name>.json.
pub fn write_results(name: &str, results: &impl serde::Serialize) {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-results");
    let _ = std::fs::create_dir_all(&out);
    std::fs::write(out.join(format!("{name}.json")), serde_json::to_string_pretty(results).unwrap()).unwrap();
}

/// One HTTP/1.1 exchange on a fresh connection: the whole response, head and body, as text.
fn exchange(addr: &str, method: &str, path: &str, body: &[u8], headers: &[(String, String)]) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    Some(out)
}

/// One POST; the value of the response header `name` (lower case).
pub fn response_header(addr: &str, path: &str, body: &[u8], name: &str) -> Option<String> {
    response_header_with(addr, path, body, &[], name)
}

/// One POST with extra request headers; the value of the response header `name`.
pub fn response_header_with(
    addr: &str,
    path: &str,
    body: &[u8],
    headers: &[(String, String)],
    name: &str,
) -> Option<String> {
    let out = exchange(addr, "POST", path, body, headers)?;
    let prefix = format!("{name}: ");
    out.lines().find_map(|l| l.strip_prefix(prefix.as_str())).map(|v| v.trim().to_string())
}

/// One GET; the response body (empty if the request failed).
pub fn get_text(addr: &str, path: &str) -> String {
    let out = exchange(addr, "GET", path, b"", &[]).unwrap_or_default();
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}
