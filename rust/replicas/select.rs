//! Picking a replica for a base model: among the healthy endpoints that serve it, weighted
//! random by the configured weights. `exclude` holds replicas already tried for this request,
//! so a retry goes elsewhere.

use crate::plan::Plan;
use crate::util::rng;

pub fn pick(plan: &Plan, base: usize, exclude: &[usize]) -> Option<usize> {
    let candidates = &plan.bases[base].endpoints;
    let mut total = 0.0;
    for &i in candidates {
        if usable(plan, i, exclude) {
            total += plan.endpoints[i].weight();
        }
    }
    if total <= 0.0 {
        return None;
    }
    let mut r = rng::next_f64() * total;
    let mut last = None;
    for &i in candidates {
        if !usable(plan, i, exclude) {
            continue;
        }
        last = Some(i);
        r -= plan.endpoints[i].weight();
        if r < 0.0 {
            return Some(i);
        }
    }
    last
}

fn usable(plan: &Plan, i: usize, exclude: &[usize]) -> bool {
    plan.endpoints[i].is_healthy() && !exclude.contains(&i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing;

    fn two_endpoint_plan(w1: f64, w2: f64) -> Plan {
        let mut spec = testing::spec_json();
        spec["endpoints"] = serde_json::json!([
            {"name": "e1", "host": "127.0.0.1", "port": 9, "weight": w1, "api_key": null},
            {"name": "e2", "host": "127.0.0.1", "port": 10, "weight": w2, "api_key": null}
        ]);
        spec["models"][0]["endpoints"] = serde_json::json!(["e1", "e2"]);
        Plan::from_json(&spec.to_string(), None).unwrap()
    }

    #[test]
    fn weights_are_honoured() {
        let plan = two_endpoint_plan(3.0, 1.0);
        let mut counts = [0usize; 2];
        for _ in 0..40_000 {
            counts[pick(&plan, 0, &[]).unwrap()] += 1;
        }
        let share = counts[0] as f64 / 40_000.0;
        assert!((share - 0.75).abs() < 0.02, "share {share}");
    }

    #[test]
    fn unhealthy_and_excluded_are_skipped() {
        let plan = two_endpoint_plan(1.0, 1.0);
        plan.endpoints[0].mark_unhealthy();
        for _ in 0..100 {
            assert_eq!(pick(&plan, 0, &[]), Some(1));
        }
        assert_eq!(pick(&plan, 0, &[1]), None);
    }
}
