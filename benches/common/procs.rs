//! Starting the processes a bench measures: each pinned to CPU cores with `taskset`, each
//! ready once it prints (or answers on) its address.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Proc {
    pub name: String,
    pub child: Child,
    pub port: u16,
}

impl Proc {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Resident set size in MiB, from /proc.
    pub fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first, so servers shut down cleanly; then make sure.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// The `lora-router` command: `$LORA_ROUTER_BIN`, else the one on PATH.
pub fn lora_router_bin() -> String {
    std::env::var("LORA_ROUTER_BIN").unwrap_or_else(|_| "lora-router".to_string())
}

/// `program args` under `taskset -c cpus`, with no input and output discarded.
pub fn pinned<S: AsRef<std::ffi::OsStr>>(cpus: &str, program: &str, args: &[S]) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg(cpus).arg(program).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

/// Runs `program args` under `taskset -c cpus` and waits until it prints `on http://H:P`.
pub fn spawn_announcing(name: &str, cpus: &str, program: &str, args: &[String]) -> Proc {
    let mut child = pinned(cpus, program, args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut s) = seen2.lock() {
                if s.len() < 64 * 1024 {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
            if !sent {
                let port = line
                    .split("on http://")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(|addr| addr.trim_end_matches(|c: char| !c.is_ascii_digit()))
                    .and_then(|addr| addr.rsplit_once(':'))
                    .and_then(|(_, p)| p.parse::<u16>().ok());
                if let Some(port) = port {
                    {
                        let _ = tx.send(port);
                        sent = true;
                    }
                }
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{name} did not start:\n{}", seen.lock().map(|s| s.clone()).unwrap_or_default()));
    Proc { name: name.to_string(), child, port }
}

/// Runs `program args` (which listens on `port`) under taskset and waits for `GET path` to answer.
pub fn spawn_polled(name: &str, cpus: &str, program: &str, args: &[String], port: u16, path: &str) -> Proc {
    let child = pinned(cpus, program, args).spawn().unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let proc = Proc { name: name.to_string(), child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
            let mut buf = [0u8; 16];
            if s.read(&mut buf).map(|n| n >= 12 && &buf[9..12] == b"200").unwrap_or(false) {
                return proc;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{name} did not become ready on port {port}");
}

/// Pins the current process to `cpus`.
pub fn pin_self(cpus: &str) {
    let _ =
        Command::new("taskset").arg("-cp").arg(cpus).arg(std::process::id().to_string()).stdout(Stdio::null()).status();
}

/// PEFT-shaped adapter directories under `root`.
pub fn adapter_dirs(root: &std::path::Path, names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|n| {
            let d = root.join(n);
            std::fs::create_dir_all(&d).expect("adapter dir");
            std::fs::write(d.join("adapter_config.json"), r#"{"peft_type":"LORA","r":8,"lora_alpha":16}"#)
                .expect("write");
            (n.to_string(), d.display().to_string())
        })
        .collect()
}

/// `lora-router sim` serving `bench-base` with `adapters` (all resident) and zero delays, keeping
/// no request log: fast enough that what a bench measures is the router.
pub fn spawn_fast_sim(bin: &str, adapters: &[(String, String)]) -> Proc {
    let mut args: Vec<String> = ["sim", "--port", "0", "--served-model-name", "bench-base", "--threads", "1"]
        .into_iter()
        .chain(["--ttft-ms", "0", "--itl-ms", "0", "--lora-load-ms", "0", "--default-max-tokens", "16"])
        .chain(["--record-requests", "0"])
        .map(String::from)
        .collect();
    args.extend(["--max-loras".to_string(), adapters.len().max(1).to_string(), "--lora-modules".to_string()]);
    args.extend(adapters.iter().map(|(n, p)| format!("{n}={p}")));
    spawn_announcing("sim", "0-1", bin, &args)
}
