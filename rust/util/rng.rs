//! A per-thread xorshift RNG for load-balancing choices. Not for anything secret.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    let local = 0u8;
    let addr = &local as *const u8 as u64;
    super::hash::mix64(nanos ^ addr.rotate_left(32)) | 1
}

/// A uniformly distributed u64.
pub fn next_u64() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

/// A uniformly distributed float in [0, 1).
pub fn next_f64() -> f64 {
    (next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A uniformly distributed index below `n` (n > 0).
pub fn below(n: usize) -> usize {
    ((next_u64() as u128 * n as u128) >> 64) as usize
}

/// A seeded generator for simulations and tests that must repeat.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        SeededRng(super::hash::mix64(seed) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn below_stays_in_range() {
        for n in 1..50 {
            for _ in 0..100 {
                assert!(super::below(n) < n);
            }
        }
    }

    #[test]
    fn floats_in_unit_interval() {
        for _ in 0..1000 {
            let f = super::next_f64();
            assert!((0.0..1.0).contains(&f));
        }
    }
}
