//! Picking a replica for a request's target, by the plan's placement policy.
//!
//! Candidates are the healthy replicas of the endpoints that serve the base model, minus those already tried
//! for this request; for an adapter, only those that serve it or can load it (it has a path
//! and the replica accepts run-time loads). The policies differ only in how they choose among
//! candidates; all of them see the same per-replica state (state/residency.rs).
//!
//! `lora-aware`, ours: a request goes where its adapter is resident and the replica is not
//! saturated (homes first, then the lower load of two sampled), so it needs no load. Only
//! when there is no such place does the adapter get a new copy, while it has fewer than
//! `max_replicas`: in a free slot (its homes first: the first `min_replicas` of its
//! rendezvous-hash ranking, then that ranking), else on a home, else where the eviction costs
//! least: the adapter vLLM's LRU would evict there is the one asked for least lately
//! (state/demand.rs). Homes come before cheaper evictions elsewhere because every router of a
//! fleet computes the same homes, where eviction costs are each router's own estimate: the
//! routers would otherwise put copies of one adapter in different places and load it more.
//! Saturated: every slot busy (vLLM would defer the request), or a load `spill_threshold`
//! requests above the least loaded candidate's.
//!
//! The others reproduce, for comparison on the same router: round robin; least loaded; Ray
//! Serve LLM's multiplexing rule (replicas holding the adapter, else those holding the fewest
//! adapters; power of two choices on queue length); and the llm-d/GIE LoRA affinity rule on
//! the replicas' reported metrics (replicas with the adapter active with p = 0.999, else with
//! a free slot; then the least queued band; random among it).

use std::sync::atomic::Ordering;

use super::Replica;
use crate::plan::{Adapter, Placement, Plan, Policy, Target};
use crate::state::membership::ReplicaSet;
use crate::state::residency::{RuntimeUpdates, SlotTier};
use crate::state::LiveState;
use crate::util::{hash, rng};

/// Where a request goes (an index into the replica set), and whether its adapter must be
/// loaded there first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub replica: usize,
    pub load: bool,
}

/// What a policy sees: the plan, the replicas as of this request, and the live state.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub plan: &'a Plan,
    pub set: &'a ReplicaSet,
    pub live: &'a LiveState,
}

impl View<'_> {
    fn r(&self, i: usize) -> &Replica {
        &self.set.list[i]
    }

    /// Every replica of the endpoints that serve a base model.
    pub fn members(&self, base: usize) -> Vec<usize> {
        self.plan.bases[base].endpoints.iter().flat_map(|g| self.set.group(g).iter().copied()).collect()
    }
}

pub fn pick(v: &View<'_>, target: &Target, exclude: &[usize]) -> Option<Pick> {
    let plan = v.plan;
    let adapter = target.adapter.as_deref().and_then(|a| plan.adapters.get(a));
    let candidates: Vec<usize> = v
        .members(target.base)
        .into_iter()
        .filter(|&i| v.r(i).is_healthy() && !exclude.contains(&i))
        .filter(|&i| adapter.is_none_or(|a| serves(v.r(i), a) || loadable(v.r(i), a)))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let Some(a) = adapter else {
        return Some(Pick { replica: by_load(v, &candidates)?, load: false });
    };
    let chosen = match plan.placement.policy {
        Policy::LoraAware => lora_aware(v, a, &candidates),
        Policy::RoundRobin => {
            let n = v.live.round_robin.fetch_add(1, Ordering::Relaxed);
            Some(candidates[n % candidates.len()])
        }
        Policy::LeastLoaded => {
            let min = candidates.iter().map(|&i| load(v.r(i))).min()?;
            let least: Vec<usize> = candidates.iter().copied().filter(|&i| load(v.r(i)) == min).collect();
            Some(least[rng::below(least.len())])
        }
        Policy::RayMultiplex => ray_multiplex(v, a, &candidates),
        Policy::LlmdAffinity => llmd_affinity(v, a, &candidates),
    }?;
    Some(Pick { replica: chosen, load: !serves(v.r(chosen), a) })
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
fn by_load(v: &View<'_>, candidates: &[usize]) -> Option<usize> {
    let first = weighted(v, candidates)?;
    let second = weighted(v, candidates)?;
    let score = |i: usize| load(v.r(i)) as f64 / v.r(i).weight().max(1e-9);
    Some(if score(second) < score(first) { second } else { first })
}

fn weighted(v: &View<'_>, candidates: &[usize]) -> Option<usize> {
    let total: f64 = candidates.iter().map(|&i| v.r(i).weight().max(0.0)).sum();
    if total <= 0.0 {
        return candidates.first().copied();
    }
    let mut r = rng::next_f64() * total;
    for &i in candidates {
        r -= v.r(i).weight().max(0.0);
        if r < 0.0 {
            return Some(i);
        }
    }
    candidates.last().copied()
}

/// Rendezvous rank of a replica for an adapter (`adapter_seed`: the unfinished hash of its
/// name): higher is more at home. It depends only on the two names, so every router agrees.
pub fn home_rank(adapter_seed: u64, replica: &Replica) -> u64 {
    hash::mix64(hash::extend(adapter_seed, replica.name.as_bytes()))
}

/// `members` (indexes into the set) in an adapter's home order, healthy or not, so homes stay
/// put. The Python registry places adapters by the same order.
pub fn home_order(set: &ReplicaSet, members: &[usize], adapter: &str) -> Vec<usize> {
    rank(set, members, hash::partial(&[adapter.as_bytes()]))
}

fn rank(set: &ReplicaSet, members: &[usize], seed: u64) -> Vec<usize> {
    let mut order = members.to_vec();
    order.sort_by_key(|&i| std::cmp::Reverse(home_rank(seed, &set.list[i])));
    order
}

fn lora_aware(v: &View<'_>, a: &Adapter, candidates: &[usize]) -> Option<usize> {
    let p: &Placement = &v.plan.placement;
    v.live.demand.touch(&a.served);
    let order = rank(v.set, candidates, a.rank_seed);
    let position = |i: usize| order.iter().position(|&x| x == i).unwrap_or(usize::MAX);
    let is_home = |i: usize| position(i) < a.min_replicas.max(1);
    let min_load = candidates.iter().map(|&i| load(v.r(i))).min()?;
    let saturated = |i: usize| {
        let r = v.r(i);
        r.lora.tier(&a.served) == SlotTier::MustWait || load(r) >= min_load + p.spill_threshold
    };
    let resident: Vec<usize> = order.iter().copied().filter(|&i| v.r(i).lora.is_resident(&a.served)).collect();

    // 1. Where it is resident and not saturated: no load. Homes first; then the lower load
    //    of two sampled.
    let open: Vec<usize> = resident.iter().copied().filter(|&i| !saturated(i)).collect();
    if !open.is_empty() {
        let at_home: Vec<usize> = open.iter().copied().filter(|&i| is_home(i)).collect();
        return by_load(v, if at_home.is_empty() { &open } else { &at_home });
    }

    // 2. A new copy (the first, or a spill because every copy is saturated), while it is on
    //    fewer than max_replicas: a free slot (homes first, then home order), else a home,
    //    else the eviction that costs least (the victim asked for least lately). A replica
    //    that serves it already ranks first: there it needs only a slot, where elsewhere it
    //    needs a load through the API (a disk read and a CPU-cache entry) and then a slot.
    if resident.len() < a.max_replicas.unwrap_or(usize::MAX) {
        let cost = |i: usize| {
            let r = v.r(i);
            let evicts = match r.lora.tier(&a.served) {
                SlotTier::FreeSlot => 0.0,
                _ => 1.0 + r.lora.eviction_victim().map(|x| v.live.demand.level(&x)).unwrap_or(0.0),
            };
            (!serves(r, a), evicts > 0.0, !is_home(i), evicts, position(i))
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
    pool.iter().copied().min_by_key(|&i| (load(v.r(i)), position(i)))
}

fn ray_multiplex(v: &View<'_>, a: &Adapter, candidates: &[usize]) -> Option<usize> {
    let holding: Vec<usize> = candidates.iter().copied().filter(|&i| v.r(i).lora.is_resident(&a.served)).collect();
    let pool = if holding.is_empty() {
        let fewest = candidates.iter().map(|&i| v.r(i).lora.resident_count()).min()?;
        candidates.iter().copied().filter(|&i| v.r(i).lora.resident_count() == fewest).collect()
    } else {
        holding
    };
    let (x, y) = (pool[rng::below(pool.len())], pool[rng::below(pool.len())]);
    Some(if load(v.r(y)) < load(v.r(x)) { y } else { x })
}

/// GIE's legacy LoRA affinity thresholds (anchors.md).
const LLMD_QUEUE_THRESHOLD_LORA: u64 = 128;
const LLMD_AFFINITY: f64 = 0.999;

/// The llm-d rule sees what a metrics-only scheduler sees: the adapters each replica's
/// `/metrics` last reported active, and its reported queue (replicas/sync.rs).
fn llmd_affinity(v: &View<'_>, a: &Adapter, candidates: &[usize]) -> Option<usize> {
    let queue = |i: usize| v.r(i).lora.waiting();
    let queued: Vec<usize> = candidates.iter().copied().filter(|&i| queue(i) < LLMD_QUEUE_THRESHOLD_LORA).collect();
    let pool = if queued.is_empty() { candidates.to_vec() } else { queued };
    let active: Vec<usize> = pool.iter().copied().filter(|&i| v.r(i).lora.reported_active(&a.served)).collect();
    let free: Vec<usize> =
        pool.iter().copied().filter(|&i| v.r(i).lora.reported_active_count() < v.r(i).lora.max_loras()).collect();
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
    use std::sync::Arc;

    struct Fixture {
        live: Arc<LiveState>,
        plan: Plan,
        set: Arc<ReplicaSet>,
    }

    impl Fixture {
        fn view(&self) -> View<'_> {
            View { plan: &self.plan, set: &self.set, live: &self.live }
        }

        fn pick(&self, t: &Target, exclude: &[usize]) -> Option<Pick> {
            pick(&self.view(), t, exclude)
        }

        fn r(&self, i: usize) -> &Arc<Replica> {
            &self.set.list[i]
        }

        fn homes(&self, adapter: &str) -> Vec<usize> {
            home_order(&self.set, &self.view().members(0), adapter)
        }
    }

    fn plan_with(endpoints: usize, max_loras: usize, policy: &str) -> Fixture {
        let mut spec = testing::spec_json();
        spec["endpoints"] = (0..endpoints)
            .map(|i| {
                json!({"name": format!("e{i}"), "host": "127.0.0.1", "port": 9000 + i, "weight": 1.0,
                       "api_key": null, "max_loras": max_loras, "discovery": {"type": "static"}})
            })
            .collect();
        spec["models"][0]["endpoints"] = (0..endpoints).map(|i| json!(format!("e{i}"))).collect();
        spec["placement"]["policy"] = json!(policy);
        let (live, plan) = testing::compiled(&spec);
        let set = live.replicas.snapshot();
        for r in &set.list {
            for a in ["tech-lora", "legal-lora"] {
                r.lora.add_registered(a.into(), format!("/adapters/{a}"));
            }
        }
        Fixture { live, plan, set }
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

    fn two_endpoint_plan(w1: f64, w2: f64) -> Fixture {
        let f = plan_with(2, 2, "lora-aware");
        f.r(0).set_weight(w1);
        f.r(1).set_weight(w2);
        f
    }

    #[test]
    fn base_model_weights_are_honoured_when_idle() {
        let f = two_endpoint_plan(3.0, 1.0);
        let t = target(None);
        let mut counts = [0usize; 2];
        for _ in 0..40_000 {
            counts[f.pick(&t, &[]).unwrap().replica] += 1;
        }
        let share = counts[0] as f64 / 40_000.0;
        assert!((share - 0.75).abs() < 0.02, "share {share}");
    }

    #[test]
    fn unhealthy_and_excluded_are_skipped() {
        let f = two_endpoint_plan(1.0, 1.0);
        let t = target(Some("tech-lora"));
        f.r(0).mark_unhealthy();
        for _ in 0..100 {
            assert_eq!(f.pick(&t, &[]).map(|p| p.replica), Some(1));
        }
        assert_eq!(f.pick(&t, &[1]), None);
    }

    #[test]
    fn an_adapter_sticks_to_its_home_and_spills_when_it_is_saturated() {
        let f = plan_with(4, 2, "lora-aware");
        let t = target(Some("tech-lora"));
        let home = f.homes("tech-lora")[0];
        for _ in 0..50 {
            assert_eq!(f.pick(&t, &[]).unwrap().replica, home);
        }
        // Fill the home's slots with busy adapters: the request must not wait there.
        let r = f.r(home);
        r.lora.begin(&"x".into());
        r.lora.begin(&"y".into());
        let spilled = f.pick(&t, &[]).unwrap().replica;
        assert_ne!(spilled, home);
        assert_eq!(spilled, f.homes("tech-lora")[1]);
    }

    #[test]
    fn homes_depend_only_on_names() {
        // Another router with the endpoints listed the other way round agrees on every home.
        let f = plan_with(4, 2, "lora-aware");
        let names = |f: &Fixture, a: &str| f.homes(a).iter().map(|&i| f.r(i).name.to_string()).collect::<Vec<_>>();
        let mut spec = testing::spec_json();
        spec["endpoints"] = (0..4)
            .rev()
            .map(|i| {
                json!({"name": format!("e{i}"), "host": "127.0.0.1", "port": 9000 + i, "weight": 1.0,
                       "api_key": null, "max_loras": 2, "discovery": {"type": "static"}})
            })
            .collect();
        spec["models"][0]["endpoints"] = (0..4).rev().map(|i| json!(format!("e{i}"))).collect();
        let (live, plan) = testing::compiled(&spec);
        let g = Fixture { set: live.replicas.snapshot(), live, plan };
        for a in ["tech-lora", "legal-lora", "x", "y"] {
            assert_eq!(names(&f, a), names(&g, a));
        }
    }

    #[test]
    fn a_resident_copy_beats_a_load_and_a_cold_adapter_evicts_the_least_wanted() {
        let f = plan_with(3, 1, "lora-aware");
        let t = target(Some("tech-lora"));
        let [home, second, third] = f.homes("tech-lora")[..] else { panic!() };
        // A copy on another replica (its home was down); the home has room.
        f.r(second).lora.begin(&"tech-lora".into());
        f.r(second).lora.end("tech-lora");
        assert_eq!(f.pick(&t, &[]).unwrap().replica, second);
        // The copy was evicted; every replica's one slot holds an idle adapter, the home's
        // wanted the most: the load still goes home, where every router of a fleet puts it.
        let fill = |i: usize, name: &str, wanted: usize| {
            f.r(i).lora.begin(&name.into());
            f.r(i).lora.end(name);
            for _ in 0..wanted {
                f.live.demand.touch(&name.into());
            }
        };
        fill(second, "warm", 5);
        fill(third, "cold", 1);
        fill(home, "hot", 20);
        assert_eq!(f.pick(&t, &[]).unwrap().replica, home);
        // The home saturated (its slot busy): the load goes where it evicts the least wanted.
        f.r(home).lora.begin(&"hot".into());
        assert_eq!(f.pick(&t, &[]).unwrap().replica, third);
    }

    #[test]
    fn an_adapter_without_a_replica_is_loaded_on_demand() {
        let f = plan_with(2, 2, "lora-aware");
        for r in &f.set.list {
            r.lora.remove_registered("tech-lora");
        }
        let t = target(Some("tech-lora"));
        let p = f.pick(&t, &[]).unwrap();
        assert!(p.load);
        // Runtime loading off everywhere: nothing can serve it.
        for r in &f.set.list {
            r.lora.set_runtime_updates(RuntimeUpdates::Off);
        }
        assert_eq!(f.pick(&t, &[]), None);
    }

    #[test]
    fn every_policy_picks_a_candidate() {
        for policy in ["lora-aware", "round-robin", "least-loaded", "ray-multiplex", "llm-d-affinity"] {
            let f = plan_with(3, 2, policy);
            let t = target(Some("legal-lora"));
            f.r(1).mark_unhealthy();
            for _ in 0..20 {
                let p = f.pick(&t, &[]).unwrap();
                assert_ne!(p.replica, 1, "{policy}");
                assert!(!p.load);
            }
        }
    }
}
