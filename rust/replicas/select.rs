//! Picking a replica for a request's target, by the plan's placement policy.
//!
//! Candidates are the healthy endpoints that serve the base model, minus those already tried
//! for this request; for an adapter, only those that serve it or can load it (it has a path
//! and the replica accepts run-time loads). The policies differ only in how they choose among
//! candidates; all of them see the same per-replica state (replicas/lora.rs).
//!
//! `lora-aware`, ours: a request goes where its adapter is resident and the replica is not
//! saturated (homes first, then the lower load of two sampled), so it needs no load. Only
//! when there is no such place does the adapter get a new copy, while it has fewer than
//! `max_replicas`: in a free slot (its homes first: the first `min_replicas` of its
//! rendezvous-hash ranking, then that ranking), else where the eviction costs least: the
//! adapter vLLM's LRU would evict there is the one asked for least lately (replicas/demand.rs).
//! Saturated: every slot busy (vLLM would defer the request), or a load `spill_threshold`
//! requests above the least loaded candidate's.
//!
//! The others reproduce, for comparison on the same router: round robin; least loaded; Ray
//! Serve LLM's multiplexing rule (replicas holding the adapter, else those holding the fewest
//! adapters; power of two choices on queue length); and the llm-d/GIE LoRA affinity rule on
//! the replicas' reported metrics (replicas with the adapter active with p = 0.999, else with
//! a free slot; then the least queued band; random among it).

use std::sync::atomic::Ordering;

use super::lora::{RuntimeUpdates, SlotTier};
use super::Replica;
use crate::plan::{Adapter, Placement, Plan, Policy, Target};
use crate::util::{hash, rng};

/// Where a request goes, and whether its adapter must be loaded there first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub replica: usize,
    pub load: bool,
}

pub fn pick(plan: &Plan, target: &Target, exclude: &[usize]) -> Option<Pick> {
    let adapter = target.adapter.as_deref().and_then(|a| plan.adapters.get(a));
    let candidates: Vec<usize> = plan.bases[target.base]
        .endpoints
        .iter()
        .copied()
        .filter(|&i| plan.endpoints[i].is_healthy() && !exclude.contains(&i))
        .filter(|&i| adapter.is_none_or(|a| serves(&plan.endpoints[i], a) || loadable(&plan.endpoints[i], a)))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let Some(a) = adapter else {
        return Some(Pick { replica: by_load(plan, &candidates)?, load: false });
    };
    let chosen = match plan.placement.policy {
        Policy::LoraAware => lora_aware(plan, a, &candidates),
        Policy::RoundRobin => {
            let n = plan.round_robin.fetch_add(1, Ordering::Relaxed);
            Some(candidates[n % candidates.len()])
        }
        Policy::LeastLoaded => {
            let min = candidates.iter().map(|&i| load(&plan.endpoints[i])).min()?;
            let least: Vec<usize> = candidates.iter().copied().filter(|&i| load(&plan.endpoints[i]) == min).collect();
            Some(least[rng::below(least.len())])
        }
        Policy::RayMultiplex => ray_multiplex(plan, a, &candidates),
        Policy::LlmdAffinity => llmd_affinity(plan, a, &candidates),
    }?;
    Some(Pick { replica: chosen, load: !serves(&plan.endpoints[chosen], a) })
}

fn serves(r: &Replica, a: &Adapter) -> bool {
    r.lora.is_registered(&a.served)
}

fn loadable(r: &Replica, a: &Adapter) -> bool {
    a.path.is_some() && r.lora.runtime_updates() != RuntimeUpdates::Off
}

/// The router's in-flight requests on the replica plus those its metrics say are waiting.
fn load(r: &Replica) -> u64 {
    r.inflight() as u64 + r.lora.waiting()
}

/// Two sampled by weight, the lower load per weight wins (idle replicas: weighted random).
fn by_load(plan: &Plan, candidates: &[usize]) -> Option<usize> {
    let first = weighted(plan, candidates)?;
    let second = weighted(plan, candidates)?;
    let score = |i: usize| load(&plan.endpoints[i]) as f64 / plan.endpoints[i].weight().max(1e-9);
    Some(if score(second) < score(first) { second } else { first })
}

fn weighted(plan: &Plan, candidates: &[usize]) -> Option<usize> {
    let total: f64 = candidates.iter().map(|&i| plan.endpoints[i].weight().max(0.0)).sum();
    if total <= 0.0 {
        return candidates.first().copied();
    }
    let mut r = rng::next_f64() * total;
    for &i in candidates {
        r -= plan.endpoints[i].weight().max(0.0);
        if r < 0.0 {
            return Some(i);
        }
    }
    candidates.last().copied()
}

/// Rendezvous rank of a replica for an adapter: higher is more at home.
pub fn home_rank(adapter: &str, replica: &Replica) -> u64 {
    hash::stable_hash(&[adapter.as_bytes(), replica.name.as_bytes()])
}

/// The base's endpoints in an adapter's home order (healthy or not, so homes stay put). The
/// Python registry places adapters by the same order.
pub fn home_order(plan: &Plan, adapter: &str, base: usize) -> Vec<usize> {
    rank_endpoints(&plan.endpoints, &plan.bases[base].endpoints, adapter)
}

/// `endpoints` (indexes into `all`) in rendezvous order for `adapter`. The plan computes it
/// once per adapter when it is compiled (`Adapter::home_order`).
pub fn rank_endpoints(all: &[std::sync::Arc<Replica>], endpoints: &[usize], adapter: &str) -> Vec<usize> {
    let mut order = endpoints.to_vec();
    order.sort_by_key(|&i| std::cmp::Reverse(home_rank(adapter, &all[i])));
    order
}

fn lora_aware(plan: &Plan, a: &Adapter, candidates: &[usize]) -> Option<usize> {
    let p: &Placement = &plan.placement;
    plan.demand.touch(&a.served);
    let order: Vec<usize> = a.home_order.iter().copied().filter(|i| candidates.contains(i)).collect();
    let position = |i: usize| order.iter().position(|&x| x == i).unwrap_or(usize::MAX);
    let is_home = |i: usize| position(i) < a.min_replicas.max(1);
    let min_load = candidates.iter().map(|&i| load(&plan.endpoints[i])).min()?;
    let saturated = |i: usize| {
        let r = &plan.endpoints[i];
        r.lora.tier(&a.served) == SlotTier::MustWait || load(r) >= min_load + p.spill_threshold
    };
    let resident: Vec<usize> =
        order.iter().copied().filter(|&i| plan.endpoints[i].lora.is_resident(&a.served)).collect();

    // 1. Where it is resident and not saturated: no load. Homes first; then the lower load
    //    of two sampled.
    let open: Vec<usize> = resident.iter().copied().filter(|&i| !saturated(i)).collect();
    if !open.is_empty() {
        let at_home: Vec<usize> = open.iter().copied().filter(|&i| is_home(i)).collect();
        return by_load(plan, if at_home.is_empty() { &open } else { &at_home });
    }

    // 2. A new copy (the first, or a spill because every copy is saturated), while it is on
    //    fewer than max_replicas: a free slot (homes first, then home order), else the
    //    eviction that costs least (the victim asked for least lately). A replica that
    //    serves it already ranks first: there it needs only a slot, where elsewhere it needs
    //    a load through the API (a disk read and a CPU-cache entry) and then a slot.
    if resident.len() < a.max_replicas.unwrap_or(usize::MAX) {
        let cost = |i: usize| {
            let r = &plan.endpoints[i];
            let evicts = match r.lora.tier(&a.served) {
                SlotTier::FreeSlot => 0.0,
                _ => 1.0 + r.lora.eviction_victim().map(|v| plan.demand.level(&v)).unwrap_or(0.0),
            };
            (!serves(r, a), evicts, !is_home(i), position(i))
        };
        let best = order
            .iter()
            .copied()
            .filter(|&i| !saturated(i) && !resident.contains(&i))
            .min_by(|&x, &y| cost(x).partial_cmp(&cost(y)).unwrap_or(std::cmp::Ordering::Equal));
        if best.is_some() {
            return best;
        }
    }

    // 3. Everything saturated: it queues where it is resident (or anywhere), least loaded first.
    let pool = if resident.is_empty() { candidates } else { &resident[..] };
    pool.iter().copied().min_by_key(|&i| (load(&plan.endpoints[i]), position(i)))
}

fn ray_multiplex(plan: &Plan, a: &Adapter, candidates: &[usize]) -> Option<usize> {
    let holding: Vec<usize> =
        candidates.iter().copied().filter(|&i| plan.endpoints[i].lora.is_resident(&a.served)).collect();
    let pool = if holding.is_empty() {
        let fewest = candidates.iter().map(|&i| plan.endpoints[i].lora.resident_count()).min()?;
        candidates.iter().copied().filter(|&i| plan.endpoints[i].lora.resident_count() == fewest).collect()
    } else {
        holding
    };
    let (x, y) = (pool[rng::below(pool.len())], pool[rng::below(pool.len())]);
    Some(if load(&plan.endpoints[y]) < load(&plan.endpoints[x]) { y } else { x })
}

/// GIE's legacy LoRA affinity thresholds (anchors.md).
const LLMD_QUEUE_THRESHOLD_LORA: u64 = 128;
const LLMD_AFFINITY: f64 = 0.999;

/// The llm-d rule sees what a metrics-only scheduler sees: the adapters each replica's
/// `/metrics` last reported active, and its reported queue (replicas/sync.rs).
fn llmd_affinity(plan: &Plan, a: &Adapter, candidates: &[usize]) -> Option<usize> {
    let r = |i: usize| &plan.endpoints[i];
    let queue = |i: usize| r(i).lora.waiting();
    let queued: Vec<usize> = candidates.iter().copied().filter(|&i| queue(i) < LLMD_QUEUE_THRESHOLD_LORA).collect();
    let pool = if queued.is_empty() { candidates.to_vec() } else { queued };
    let active: Vec<usize> = pool.iter().copied().filter(|&i| r(i).lora.reported_active(&a.served)).collect();
    let free: Vec<usize> =
        pool.iter().copied().filter(|&i| r(i).lora.reported_active_count() < r(i).lora.max_loras()).collect();
    let affine = if !active.is_empty() && (rng::next_f64() < LLMD_AFFINITY || free.is_empty()) {
        active
    } else if !free.is_empty() {
        free
    } else {
        pool
    };
    // The least-queued band: [min, min + (max - min) / n].
    let queues: Vec<u64> = affine.iter().map(|&i| queue(i)).collect();
    let (min, max) = (*queues.iter().min()?, *queues.iter().max()?);
    let band = min + (max - min) / affine.len() as u64;
    let within: Vec<usize> = affine.iter().zip(&queues).filter(|(_, &q)| q <= band).map(|(&i, _)| i).collect();
    Some(within[rng::below(within.len())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing;
    use serde_json::json;

    fn plan_with(endpoints: usize, max_loras: usize, policy: &str) -> Plan {
        let mut spec = testing::spec_json();
        spec["endpoints"] = (0..endpoints)
            .map(|i| {
                json!({"name": format!("e{i}"), "host": "127.0.0.1", "port": 9000 + i, "weight": 1.0,
                             "api_key": null, "max_loras": max_loras})
            })
            .collect();
        spec["models"][0]["endpoints"] = (0..endpoints).map(|i| json!(format!("e{i}"))).collect();
        spec["placement"]["policy"] = json!(policy);
        let plan = Plan::from_json(&spec.to_string(), None).unwrap();
        for r in &plan.endpoints {
            for a in ["tech-lora", "legal-lora"] {
                r.lora.add_registered(a.into(), format!("/adapters/{a}"));
            }
        }
        plan
    }

    fn target(adapter: Option<&str>) -> Target {
        Target {
            base: 0,
            adapter: adapter.map(Into::into),
            score: 1.0,
            use_reasoning: None,
            reasoning_effort: "medium".into(),
        }
    }

    fn two_endpoint_plan(w1: f64, w2: f64) -> Plan {
        let plan = plan_with(2, 2, "lora-aware");
        plan.endpoints[0].set_weight(w1);
        plan.endpoints[1].set_weight(w2);
        plan
    }

    #[test]
    fn base_model_weights_are_honoured_when_idle() {
        let plan = two_endpoint_plan(3.0, 1.0);
        let t = target(None);
        let mut counts = [0usize; 2];
        for _ in 0..40_000 {
            counts[pick(&plan, &t, &[]).unwrap().replica] += 1;
        }
        let share = counts[0] as f64 / 40_000.0;
        assert!((share - 0.75).abs() < 0.02, "share {share}");
    }

    #[test]
    fn unhealthy_and_excluded_are_skipped() {
        let plan = two_endpoint_plan(1.0, 1.0);
        let t = target(Some("tech-lora"));
        plan.endpoints[0].mark_unhealthy();
        for _ in 0..100 {
            assert_eq!(pick(&plan, &t, &[]).map(|p| p.replica), Some(1));
        }
        assert_eq!(pick(&plan, &t, &[1]), None);
    }

    #[test]
    fn an_adapter_sticks_to_its_home_and_spills_when_it_is_saturated() {
        let plan = plan_with(4, 2, "lora-aware");
        let t = target(Some("tech-lora"));
        let a = plan.adapters.get("tech-lora").unwrap();
        let home = home_order(&plan, &a.name, a.base)[0];
        for _ in 0..50 {
            assert_eq!(pick(&plan, &t, &[]).unwrap().replica, home);
        }
        // Fill the home's slots with busy adapters: the request must not wait there.
        let r = &plan.endpoints[home];
        r.lora.begin(&"x".into());
        r.lora.begin(&"y".into());
        let spilled = pick(&plan, &t, &[]).unwrap().replica;
        assert_ne!(spilled, home);
        assert_eq!(spilled, home_order(&plan, &a.name, a.base)[1]);
    }

    #[test]
    fn a_resident_copy_beats_a_load_and_a_cold_adapter_evicts_the_least_wanted() {
        let plan = plan_with(2, 1, "lora-aware");
        let t = target(Some("tech-lora"));
        let a = plan.adapters.get("tech-lora").unwrap();
        let (home, other) = (home_order(&plan, &a.name, a.base)[0], home_order(&plan, &a.name, a.base)[1]);
        // A copy on the other replica (its home was down); the home has room.
        plan.endpoints[other].lora.begin(&"tech-lora".into());
        plan.endpoints[other].lora.end("tech-lora");
        assert_eq!(pick(&plan, &t, &[]).unwrap().replica, other);
        // The copy was evicted; both replicas' one slot holds an idle adapter, and the one on
        // the home is wanted far more: the load goes where it evicts the less wanted one.
        plan.endpoints[other].lora.begin(&"cold".into());
        plan.endpoints[other].lora.end("cold");
        plan.endpoints[home].lora.begin(&"hot".into());
        plan.endpoints[home].lora.end("hot");
        for _ in 0..20 {
            plan.demand.touch(&"hot".into());
        }
        plan.demand.touch(&"cold".into());
        assert_eq!(pick(&plan, &t, &[]).unwrap().replica, other);
    }

    #[test]
    fn an_adapter_without_a_replica_is_loaded_on_demand() {
        let plan = plan_with(2, 2, "lora-aware");
        for r in &plan.endpoints {
            r.lora.remove_registered("tech-lora");
        }
        let t = target(Some("tech-lora"));
        let p = pick(&plan, &t, &[]).unwrap();
        assert!(p.load);
        // Runtime loading off everywhere: nothing can serve it.
        for r in &plan.endpoints {
            r.lora.set_runtime_updates(RuntimeUpdates::Off);
        }
        assert_eq!(pick(&plan, &t, &[]), None);
    }

    #[test]
    fn every_policy_picks_a_candidate() {
        for policy in ["lora-aware", "round-robin", "least-loaded", "ray-multiplex", "llm-d-affinity"] {
            let plan = plan_with(3, 2, policy);
            let t = target(Some("legal-lora"));
            plan.endpoints[1].mark_unhealthy();
            for _ in 0..20 {
                let p = pick(&plan, &t, &[]).unwrap();
                assert_ne!(p.replica, 1, "{policy}");
                assert!(!p.load);
            }
        }
    }
}
