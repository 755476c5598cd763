//! How much each adapter is asked for lately: an exponentially decaying request rate per
//! served adapter name, updated on every placement. Placement uses it to choose what to
//! evict: loading an adapter where the slot it takes was holding a rarely used one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How fast old requests stop counting: a rate estimate's half-life.
const HALF_LIFE_S: f64 = 10.0;

pub struct Demand {
    epoch: Instant,
    /// served name -> (decayed count, seconds since `epoch` when last updated).
    rates: Mutex<HashMap<Arc<str>, (f64, f64)>>,
}

impl Default for Demand {
    fn default() -> Self {
        Demand { epoch: Instant::now(), rates: Mutex::new(HashMap::new()) }
    }
}

fn decay(count: f64, from: f64, to: f64) -> f64 {
    count * (-(to - from).max(0.0) * std::f64::consts::LN_2 / HALF_LIFE_S).exp()
}

impl Demand {
    fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// One more request for `served`.
    pub fn touch(&self, served: &Arc<str>) {
        let now = self.now();
        let mut m = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(served.clone()).or_insert((0.0, now));
        *e = (decay(e.0, e.1, now) + 1.0, now);
    }

    /// The decayed request count of `served` now (0 for one never asked for).
    pub fn level(&self, served: &str) -> f64 {
        let now = self.now();
        let m = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        m.get(served).map(|&(c, t)| decay(c, t, now)).unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_requests_more_demand() {
        let d = Demand::default();
        for _ in 0..10 {
            d.touch(&"hot".into());
        }
        d.touch(&"cold".into());
        assert!(d.level("hot") > 9.9 && d.level("cold") > 0.99 && d.level("never") == 0.0);
        assert!((decay(8.0, 0.0, HALF_LIFE_S) - 4.0).abs() < 1e-9);
    }
}
