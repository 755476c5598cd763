//! Quota arithmetic: each tenant's requests and tokens over the last 60 seconds, and each
//! adapter's requests in flight.
//!
//! The window slides: it holds one-second buckets, and a request is admitted while the
//! tenant's requests in the last 60 buckets are below `rpm` and its tokens (prompt plus
//! completion, charged when each response ends) below `tpm`. There is no minute boundary to
//! burst across. The in-process store keeps a `Window` per tenant; the Redis store runs the
//! same rule in a script, on the Redis server's clock (store/redis.rs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::errors::{ErrorKind, RouterError};

/// Buckets in the window: one per second.
pub const WINDOW_S: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

impl Limits {
    pub fn any(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some()
    }

    /// Each of `n` processes' share of the limits (at least 1 each), for enforcing them
    /// locally while the shared counters are unreachable.
    pub fn share(&self, n: u64) -> Limits {
        let part = |l: u64| l.div_ceil(n.max(1)).max(1);
        Limits { rpm: self.rpm.map(part), tpm: self.tpm.map(part) }
    }
}

/// Which limit a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Requests,
    Tokens,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admitted,
    Limited { limit: Limit, value: u64, retry_after_s: u64 },
}

impl Verdict {
    /// The 429 a limited request gets.
    pub fn error(&self, tenant: &str) -> Option<RouterError> {
        let Verdict::Limited { limit, value, retry_after_s } = *self else { return None };
        let what = match limit {
            Limit::Requests => "requests per minute",
            Limit::Tokens => "tokens per minute",
        };
        let mut e = RouterError::new(
            ErrorKind::RateLimited,
            format!("Rate limit reached for tenant '{tenant}': {value} {what}. Retry in {retry_after_s} s."),
        );
        e.retry_after = Some(retry_after_s);
        Some(e)
    }
}

/// One tenant's counts in one-second buckets, `(second, requests, tokens)`, as a ring.
#[derive(Debug, Clone)]
pub struct Window {
    buckets: [(u64, u64, u64); WINDOW_S as usize],
}

impl Default for Window {
    fn default() -> Self {
        Window { buckets: [(0, 0, 0); WINDOW_S as usize] }
    }
}

impl Window {
    fn bucket(&mut self, now_s: u64) -> &mut (u64, u64, u64) {
        let b = &mut self.buckets[(now_s % WINDOW_S) as usize];
        if b.0 != now_s {
            *b = (now_s, 0, 0);
        }
        b
    }

    /// Buckets still in the window at `now_s`, oldest first.
    fn live(&self, now_s: u64) -> Vec<(u64, u64, u64)> {
        let mut v: Vec<_> = self.buckets.iter().copied().filter(|b| b.0 + WINDOW_S > now_s && b.0 <= now_s).collect();
        v.sort_unstable_by_key(|b| b.0);
        v
    }

    /// Counts a request at `now_s` if the limits allow it (check and count together).
    pub fn admit(&mut self, now_s: u64, limits: Limits) -> Verdict {
        let live = self.live(now_s);
        let verdict = verdict(now_s, limits, &live);
        if verdict == Verdict::Admitted {
            self.bucket(now_s).1 += 1;
        }
        verdict
    }

    pub fn charge(&mut self, now_s: u64, tokens: u64) {
        self.bucket(now_s).2 += tokens;
    }
}

/// The verdict for a tenant whose live buckets (oldest first) are `buckets`: over a limit,
/// it may retry once enough old buckets have left the window.
pub fn verdict(now_s: u64, limits: Limits, buckets: &[(u64, u64, u64)]) -> Verdict {
    let check = |limit: Option<u64>, count: fn(&(u64, u64, u64)) -> u64, which: Limit| {
        let l = limit?;
        let mut total: u64 = buckets.iter().map(count).sum();
        if total < l {
            return None;
        }
        let mut retry = WINDOW_S;
        for b in buckets {
            total -= count(b);
            if total < l {
                retry = (b.0 + WINDOW_S).saturating_sub(now_s).max(1);
                break;
            }
        }
        Some(Verdict::Limited { limit: which, value: l, retry_after_s: retry })
    };
    check(limits.rpm, |b| b.1, Limit::Requests)
        .or_else(|| check(limits.tpm, |b| b.2, Limit::Tokens))
        .unwrap_or(Verdict::Admitted)
}

/// A place in an adapter's cap of requests in flight, given back when dropped.
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

    #[test]
    fn requests_slide_out_of_the_window() {
        let mut w = Window::default();
        let limits = Limits { rpm: Some(3), tpm: None };
        for t in [100, 130, 159] {
            assert_eq!(w.admit(t, limits), Verdict::Admitted);
        }
        // No boundary to burst across: the fourth waits until the oldest is 60 s old.
        let v = w.admit(159, limits);
        assert_eq!(v, Verdict::Limited { limit: Limit::Requests, value: 3, retry_after_s: 1 });
        assert_eq!(w.admit(160, limits), Verdict::Admitted);
        assert!(matches!(w.admit(170, limits), Verdict::Limited { retry_after_s: 20, .. }));
        let e = w.admit(170, limits).error("acme").unwrap();
        assert_eq!((e.status().as_u16(), e.retry_after), (429, Some(20)));
    }

    #[test]
    fn tokens_count_once_charged() {
        let mut w = Window::default();
        let limits = Limits { rpm: None, tpm: Some(100) };
        assert_eq!(w.admit(10, limits), Verdict::Admitted);
        w.charge(10, 60);
        assert_eq!(w.admit(11, limits), Verdict::Admitted);
        w.charge(12, 40);
        assert!(matches!(w.admit(13, limits), Verdict::Limited { limit: Limit::Tokens, retry_after_s: 57, .. }));
        assert_eq!(w.admit(72, limits), Verdict::Admitted);
    }

    #[test]
    fn shares_never_reach_zero() {
        let l = Limits { rpm: Some(100), tpm: Some(2) };
        assert_eq!(l.share(3), Limits { rpm: Some(34), tpm: Some(1) });
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
