//! Quotas: each tenant's requests and tokens per minute, and each adapter's requests in
//! flight. Over a limit, the request gets 429 with `retry-after`.
//!
//! Minutes are fixed windows of the wall clock (UTC minute), the same in every process, so
//! processes sharing Redis agree on them. A request is admitted while the tenant's count of
//! requests this minute is below `rpm` and its tokens (prompt plus completion, from each
//! response's usage, charged when the response ends) are below `tpm`. Counters live in the
//! process, or in Redis when `quotas.redis_url` is set; if Redis cannot be reached the
//! request is admitted (failing open) and the error is counted and logged.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::redis::{Redis, Reply};
use super::Tenant;
use crate::errors::{ErrorKind, RouterError};
use crate::plan::QuotaSpec;

/// One tenant's counts for one minute, in this process.
#[derive(Debug, Default)]
pub struct Window {
    inner: Mutex<(u64, u64, u64)>,
}

impl Window {
    fn current(&self, minute: u64) -> std::sync::MutexGuard<'_, (u64, u64, u64)> {
        let mut w = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if w.0 != minute {
            *w = (minute, 0, 0);
        }
        w
    }

    /// Counts one more request in `minute` if the limits allow it (check and count under one
    /// lock, so concurrent requests cannot pass together); else the (requests, tokens) so far.
    fn admit(&self, minute: u64, rpm: Option<u64>, tpm: Option<u64>) -> Result<(), (u64, u64)> {
        let mut w = self.current(minute);
        if rpm.is_some_and(|l| w.1 >= l) || tpm.is_some_and(|l| w.2 >= l) {
            return Err((w.1 + 1, w.2));
        }
        w.1 += 1;
        Ok(())
    }

    fn add_tokens(&self, minute: u64, tokens: u64) {
        self.current(minute).2 += tokens;
    }
}

fn now() -> (u64, u64) {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    (secs / 60, 60 - secs % 60)
}

pub enum Counters {
    Local,
    Redis { client: Arc<Redis>, prefix: String },
}

const ADMIT_SCRIPT: &str = "local r = redis.call('INCR', KEYS[1]) \
if r == 1 then redis.call('EXPIRE', KEYS[1], 120) end \
return {r, tonumber(redis.call('GET', KEYS[2]) or '0')}";

impl Counters {
    /// From the plan; a Redis client is kept across reloads while its URL stays the same.
    pub fn from_spec(spec: &QuotaSpec, previous: Option<&Counters>) -> Result<Counters, String> {
        let Some(url) = &spec.redis_url else {
            return Ok(Counters::Local);
        };
        let fresh = Redis::from_url(url, Duration::from_millis(250))?;
        let client = match previous {
            Some(Counters::Redis { client, .. }) if client.url() == fresh.url() => client.clone(),
            _ => Arc::new(fresh),
        };
        Ok(Counters::Redis { client, prefix: spec.redis_prefix.clone() })
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Counters::Local => "memory",
            Counters::Redis { .. } => "redis",
        }
    }

    /// Admits a tenant's request (`Ok(None)`), or says when to retry (`Err`, 429);
    /// `Ok(Some(why))`: admitted unchecked because the shared counters failed.
    pub async fn admit(&self, tenant: &Tenant) -> Result<Option<String>, RouterError> {
        if tenant.rpm.is_none() && tenant.tpm.is_none() {
            return Ok(None);
        }
        let (minute, retry) = now();
        let (requests, tokens, failure) = match self {
            Counters::Local => match tenant.window.admit(minute, tenant.rpm, tenant.tpm) {
                Ok(()) => return Ok(None),
                Err((r, t)) => (r, t, None),
            },
            Counters::Redis { client, prefix } => {
                let rk = format!("{prefix}:{}:{minute}:requests", tenant.name);
                let tk = format!("{prefix}:{}:{minute}:tokens", tenant.name);
                let args: [&[u8]; 5] = [b"EVAL", ADMIT_SCRIPT.as_bytes(), b"2", rk.as_bytes(), tk.as_bytes()];
                match client.call(&args).await {
                    Ok(Reply::Array(v)) if v.len() == 2 => {
                        (v[0].int().unwrap_or(0) as u64, v[1].int().unwrap_or(0) as u64, None)
                    }
                    Ok(other) => (0, 0, Some(format!("unexpected Redis reply {other:?}"))),
                    Err(e) => (0, 0, Some(e)),
                }
            }
        };
        if failure.is_some() {
            return Ok(failure);
        }
        let over = |what: &str, limit: u64| {
            let mut e = RouterError::new(
                ErrorKind::RateLimited,
                format!("Rate limit reached for tenant '{}': {limit} {what}. Retry in {retry} s.", tenant.name),
            );
            e.retry_after = Some(retry);
            e
        };
        if let Some(limit) = tenant.rpm.filter(|&l| requests > l) {
            return Err(over("requests per minute", limit));
        }
        if let Some(limit) = tenant.tpm.filter(|&l| tokens >= l) {
            return Err(over("tokens per minute", limit));
        }
        Ok(None)
    }

    /// Counts a finished response's tokens against its tenant. Returns the Redis write to
    /// run, if any (the caller spawns it: this runs where a response is dropped).
    pub fn charge(
        &self,
        tenant: &Tenant,
        tokens: u64,
    ) -> Option<impl std::future::Future<Output = Result<(), String>>> {
        if tenant.tpm.is_none() || tokens == 0 {
            return None;
        }
        let (minute, _) = now();
        match self {
            Counters::Local => {
                tenant.window.add_tokens(minute, tokens);
                None
            }
            Counters::Redis { client, prefix } => {
                let client = client.clone();
                let key = format!("{prefix}:{}:{minute}:tokens", tenant.name);
                Some(async move {
                    let n = tokens.to_string();
                    client.call(&[b"INCRBY", key.as_bytes(), n.as_bytes()]).await?;
                    client.call(&[b"EXPIRE", key.as_bytes(), b"120"]).await?;
                    Ok(())
                })
            }
        }
    }
}

/// A place in an adapter's concurrency cap, given back when dropped.
#[derive(Debug)]
pub struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes a place under an adapter's cap of requests in flight through this router.
pub fn acquire(active: &Arc<AtomicUsize>, cap: Option<usize>, adapter: &str) -> Result<Option<Permit>, RouterError> {
    let Some(cap) = cap else {
        return Ok(None);
    };
    let before = active.fetch_add(1, Ordering::AcqRel);
    let permit = Permit(active.clone());
    if before >= cap {
        drop(permit);
        let mut e = RouterError::new(
            ErrorKind::RateLimited,
            format!("The adapter `{adapter}` is at its limit of {cap} concurrent requests. Retry shortly."),
        );
        e.retry_after = Some(1);
        return Err(e);
    }
    Ok(Some(permit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(rpm: Option<u64>, tpm: Option<u64>) -> Tenant {
        Tenant {
            name: "acme".into(),
            adapters: Default::default(),
            bases: vec![],
            default_adapter: None,
            aliases: Default::default(),
            intent_routing: true,
            rpm,
            tpm,
            window: Default::default(),
        }
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn requests_per_minute_in_process() {
        let t = tenant(Some(3), None);
        let c = Counters::Local;
        for _ in 0..3 {
            assert!(run(c.admit(&t)).is_ok());
        }
        let e = run(c.admit(&t)).unwrap_err();
        assert_eq!(e.status().as_u16(), 429);
        assert!(e.retry_after.is_some_and(|s| (1..=60).contains(&s)));
    }

    #[test]
    fn tokens_per_minute_in_process() {
        let t = tenant(None, Some(100));
        let c = Counters::Local;
        assert!(run(c.admit(&t)).is_ok());
        assert!(c.charge(&t, 60).is_none());
        assert!(run(c.admit(&t)).is_ok());
        assert!(c.charge(&t, 40).is_none());
        assert!(run(c.admit(&t)).unwrap_err().message.contains("tokens per minute"));
    }

    #[test]
    fn concurrency_caps_give_places_back() {
        let active = Arc::new(AtomicUsize::new(0));
        let first = acquire(&active, Some(1), "a").unwrap();
        assert_eq!(acquire(&active, Some(1), "a").unwrap_err().status().as_u16(), 429);
        drop(first);
        assert!(acquire(&active, Some(1), "a").unwrap().is_some());
        assert!(acquire(&active, None, "a").unwrap().is_none());
    }
}
