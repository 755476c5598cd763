//! A circuit breaker in front of the shared store. After a failure the circuit opens: calls
//! fail at once, without touching the network, for `interval`; then one call at a time may
//! probe, and the first success closes the circuit. A black-holed Redis therefore costs at
//! most one timeout per interval, not one per request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Breaker {
    epoch: Instant,
    interval: Duration,
    /// Milliseconds since `epoch` until which the circuit is open; 0: closed.
    open_until_ms: AtomicU64,
    /// A probe is under way.
    probing: AtomicBool,
}

/// Whether a call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Closed,
    /// The circuit is open, but this call is the one probe.
    Probe,
    /// Fail fast.
    Open,
}

impl Breaker {
    pub fn new(interval: Duration) -> Breaker {
        Breaker { epoch: Instant::now(), interval, open_until_ms: AtomicU64::new(0), probing: AtomicBool::new(false) }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub fn gate(&self) -> Gate {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return Gate::Closed;
        }
        if self.now_ms() < until {
            return Gate::Open;
        }
        match self.probing.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Gate::Probe,
            Err(_) => Gate::Open,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.open_until_ms.load(Ordering::Acquire) == 0
    }

    pub fn success(&self) {
        self.open_until_ms.store(0, Ordering::Release);
        self.probing.store(false, Ordering::Release);
    }

    pub fn failure(&self) {
        // Never 0: that means closed.
        let until = self.now_ms() + self.interval.as_millis().max(1) as u64;
        self.open_until_ms.store(until, Ordering::Release);
        self.probing.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_on_failure_and_lets_one_probe_through() {
        let b = Breaker::new(Duration::from_millis(30));
        assert_eq!(b.gate(), Gate::Closed);
        b.failure();
        assert_eq!(b.gate(), Gate::Open);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.gate(), Gate::Probe);
        assert_eq!(b.gate(), Gate::Open);
        b.failure();
        assert_eq!(b.gate(), Gate::Open);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.gate(), Gate::Probe);
        b.success();
        assert_eq!(b.gate(), Gate::Closed);
        assert!(b.is_closed());
    }
}
