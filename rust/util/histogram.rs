//! A lock-free histogram with fixed bucket bounds, for Prometheus and for experiment arms'
//! statistics, and its counts as plain numbers (which can be summed across routers).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bounds for request latencies, in seconds.
pub const LATENCY_BOUNDS: &[f64] =
    &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// A histogram's counts: per bucket (not cumulative), their sum in microseconds, and how many.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramCounts {
    pub buckets: Vec<u64>,
    pub sum_micros: u64,
    pub count: u64,
}

impl HistogramCounts {
    pub fn mean_seconds(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_micros as f64 / 1e6 / self.count as f64)
    }

    /// The upper bound of the bucket holding quantile `q` (`None` with no observations, or
    /// when it lies beyond the last bound).
    pub fn quantile(&self, bounds: &[f64], q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut cumulative = 0;
        for (b, c) in bounds.iter().zip(&self.buckets) {
            cumulative += c;
            if cumulative >= rank {
                return Some(*b);
            }
        }
        None
    }
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe_seconds(&self, secs: f64) {
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counts(&self) -> HistogramCounts {
        HistogramCounts {
            buckets: self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
            count: self.count.load(Ordering::Relaxed),
        }
    }

    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.buckets) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_from_counts() {
        static BOUNDS: &[f64] = &[0.01, 0.1, 1.0];
        let h = Histogram::new(BOUNDS);
        for s in [0.005, 0.05, 0.05, 0.5] {
            h.observe_seconds(s);
        }
        let c = h.counts();
        assert_eq!(c.buckets, vec![1, 2, 1]);
        assert_eq!(c.quantile(BOUNDS, 0.5), Some(0.1));
        assert_eq!(c.quantile(BOUNDS, 0.99), Some(1.0));
        assert!((c.mean_seconds().unwrap() - 0.15125).abs() < 1e-9);
    }
}
