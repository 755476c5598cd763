//! A closed-loop HTTP/1.1 load generator: `concurrency` workers, each on its own keep-alive
//! connection, send the same request back to back. Latency is to the end of the body, or to
//! its first chunk for streaming requests (time to first chunk); the body is always drained.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Clone)]
pub struct LoadSpec {
    /// `host:port`, or several separated by commas: requests then go to each in turn.
    pub addr: String,
    pub path: &'static str,
    pub body: Bytes,
    pub headers: Vec<(String, String)>,
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Measure to the first body chunk instead of the end.
    pub first_chunk: bool,
    /// Offered load in requests per second over all workers; `None` sends back to back.
    pub rate: Option<f64>,
    /// Bodies to send in turn instead of `body` (the n-th request overall sends the n-th).
    pub variants: Option<Arc<Vec<Bytes>>>,
}

pub struct LoadResult {
    /// Sorted latencies, microseconds.
    pub latencies_us: Vec<u32>,
    pub errors: usize,
    pub elapsed: Duration,
}

impl LoadResult {
    pub fn rps(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }
    pub fn p50(&self) -> f64 {
        super::percentile(&self.latencies_us, 0.50)
    }
    pub fn p99(&self) -> f64 {
        super::percentile(&self.latencies_us, 0.99)
    }
}

pub fn run(spec: &LoadSpec) -> LoadResult {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(run_async(spec.clone()))
}

async fn run_async(spec: LoadSpec) -> LoadResult {
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let mut tasks = Vec::new();
    let sent = Arc::new(AtomicUsize::new(0));
    for _ in 0..spec.concurrency {
        let spec = spec.clone();
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move { worker(spec, measure_from, end, sent).await }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("worker");
        latencies.extend(l);
        errors += e;
    }
    latencies.sort_unstable();
    LoadResult { latencies_us: latencies, errors, elapsed: spec.duration }
}

async fn connect(addr: &str) -> Option<http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(sender)
}

async fn worker(spec: LoadSpec, measure_from: Instant, end: Instant, sent: Arc<AtomicUsize>) -> (Vec<u32>, usize) {
    let mut out = Vec::with_capacity(100_000);
    let mut errors = 0;
    let addrs: Vec<&str> = spec.addr.split(',').collect();
    let mut senders: Vec<Option<http1::SendRequest<Full<Bytes>>>> = addrs.iter().map(|_| None).collect();
    // Paced workers start spread over one interval so their sends do not line up.
    let interval = spec.rate.map(|r| Duration::from_secs_f64(spec.concurrency as f64 / r));
    let mut next = Instant::now() + interval.map(|i| i.mul_f64(super::jitter())).unwrap_or_default();
    while Instant::now() < end {
        if let Some(i) = interval {
            tokio::time::sleep_until(next.into()).await;
            next += i;
        }
        let n = sent.fetch_add(1, Ordering::Relaxed);
        let k = n % addrs.len();
        let sender = &mut senders[k];
        if sender.is_none() {
            *sender = connect(addrs[k]).await;
            if sender.is_none() {
                errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        }
        let s = sender.as_mut().expect("connected");
        let body = match &spec.variants {
            Some(v) => v[n % v.len()].clone(),
            None => spec.body.clone(),
        };
        let mut req = Request::post(spec.path)
            .header("host", addrs[k])
            .header("content-type", "application/json")
            .body(Full::new(body))
            .expect("request");
        for (k, v) in &spec.headers {
            req.headers_mut().insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let t0 = Instant::now();
        let ok = match s.send_request(req).await {
            Ok(resp) => {
                let status = resp.status();
                let mut body = resp.into_body();
                let mut latency = None;
                let mut good = status == StatusCode::OK;
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(f) if f.is_data() && spec.first_chunk && latency.is_none() => latency = Some(t0.elapsed()),
                        Ok(_) => {}
                        Err(_) => {
                            good = false;
                            break;
                        }
                    }
                }
                let latency = latency.unwrap_or_else(|| t0.elapsed());
                if good && t0 >= measure_from && Instant::now() <= end {
                    out.push(latency.as_micros().min(u128::from(u32::MAX)) as u32);
                }
                good
            }
            Err(_) => false,
        };
        if !ok {
            errors += 1;
            senders[k] = None;
        }
    }
    (out, errors)
}

/// One arm of a side-by-side comparison: where its requests go and what they carry.
pub struct ArmLoad {
    pub name: String,
    pub addr: String,
    pub body: Bytes,
    pub headers: Vec<(String, String)>,
    /// Offered load in requests per second; `None`: closed loop.
    pub rate: Option<f64>,
}

/// Runs every arm `repeats` times, interleaved (so drift hits all arms alike), at
/// `concurrency` for `seconds` after a one-second warm-up; panics on errors, since an arm
/// that fails measures the failure. Returns each arm's runs, in arm order.
pub fn repeat_arms(arms: &[ArmLoad], concurrency: usize, seconds: f64, repeats: usize) -> Vec<Vec<LoadResult>> {
    let mut runs: Vec<Vec<LoadResult>> = arms.iter().map(|_| Vec::new()).collect();
    for _ in 0..repeats {
        for (i, arm) in arms.iter().enumerate() {
            let r = run(&LoadSpec {
                addr: arm.addr.clone(),
                path: "/v1/chat/completions",
                body: arm.body.clone(),
                headers: arm.headers.clone(),
                concurrency,
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs_f64(seconds),
                first_chunk: false,
                rate: arm.rate,
                variants: None,
            });
            assert!(r.errors == 0 && !r.latencies_us.is_empty(), "{} failed with {} errors", arm.name, r.errors);
            runs[i].push(r);
        }
    }
    runs
}
