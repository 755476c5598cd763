//! A/B tests: a tenant's or a category's requests that would go to the control adapter (the
//! first arm) are split between the arms by weight. Assignment is sticky: a hash of the
//! experiment's name and the sticky key (the tenant, the request's `user`, or a header) picks
//! the arm, so the same user lands in the same arm in every process and across restarts;
//! without a sticky value the arm is drawn at random. Naming another arm's adapter
//! explicitly bypasses the split. Weights change at run time (admin API) and on reload.
//!
//! Run-time weights and per-arm statistics (requests, errors, time to first byte and total,
//! tokens) are live state (state/experiments.rs), shared across a fleet; a compiled
//! experiment holds their handle. A shadow candidate gets a copy of a share of the split
//! requests; its answer is discarded and only its statistics are kept (proxy/shadow.rs).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::Caller;
use crate::plan::{Adapter, ExperimentSpec, PlanError, StickyKey};
use crate::state::experiments::{ArmStats, Counts, ExperimentLive, Role, WeightOverride};
use crate::util::{hash, rng};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Tenant(Arc<str>),
    Category(usize),
}

pub struct Arm {
    pub adapter: Arc<str>,
    pub stats: Arc<ArmStats>,
}

pub struct Shadow {
    pub adapter: Arc<str>,
    pub share: f64,
    pub stats: Arc<ArmStats>,
}

pub struct Experiment {
    pub name: Arc<str>,
    pub scope: Scope,
    pub sticky: StickyKey,
    pub arms: Vec<Arm>,
    /// The config's weights, as given (`live` may hold run-time ones).
    config_weights: Vec<f64>,
    pub shadow: Option<Shadow>,
    pub live: Arc<ExperimentLive>,
}

/// Which arm of which experiment a request was given.
#[derive(Clone)]
pub struct Assignment {
    pub experiment: Arc<Experiment>,
    pub arm: usize,
    /// Whether a copy goes to the shadow candidate.
    pub shadow: bool,
}

impl std::fmt::Debug for Assignment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Assignment({}, shadow: {})", self.label(), self.shadow)
    }
}

impl Assignment {
    pub fn label(&self) -> String {
        format!("{}={}", self.experiment.name, self.experiment.arms[self.arm].adapter)
    }

    pub fn stats(&self) -> &Arc<ArmStats> {
        &self.experiment.arms[self.arm].stats
    }
}

/// What a request offers for stickiness.
pub struct StickyInput<'a> {
    pub caller: Option<&'a Caller>,
    pub user: Option<&'a str>,
    pub headers: &'a [(String, String)],
}

impl Experiment {
    pub fn compile(
        spec: &ExperimentSpec,
        path: &str,
        adapters: &HashMap<Arc<str>, Adapter>,
        categories: &HashMap<String, usize>,
        live: Arc<ExperimentLive>,
    ) -> Result<Experiment, PlanError> {
        let scope = match (&spec.tenant, &spec.category) {
            (Some(t), None) => Scope::Tenant(Arc::from(t.as_str())),
            (None, Some(c)) => Scope::Category(
                *categories
                    .get(c)
                    .ok_or_else(|| PlanError::new(format!("{path}.category"), format!("unknown category '{c}'")))?,
            ),
            _ => return Err(PlanError::new(path, "an experiment needs exactly one of tenant or category")),
        };
        if spec.arms.is_empty() {
            return Err(PlanError::new(format!("{path}.arms"), "an experiment needs at least one arm"));
        }
        // Python has checked that the arms share the control's base model and that the share
        // lies in 0..1 (config/checks.py); here only names must resolve.
        let known = |name: &str, p: String| {
            adapters
                .get_key_value(name)
                .map(|(k, _)| k.clone())
                .ok_or_else(|| PlanError::new(p, format!("'{name}' is not an adapter")))
        };
        let mut arms = Vec::new();
        for (i, a) in spec.arms.iter().enumerate() {
            let name = known(&a.adapter, format!("{path}.arms[{i}].adapter"))?;
            let stats = live.stats(Role::Arm, &name);
            arms.push(Arm { adapter: name, stats });
        }
        let config_weights: Vec<f64> = spec.arms.iter().map(|a| a.weight).collect();
        normalise(&config_weights).map_err(|m| PlanError::new(format!("{path}.arms"), m))?;
        let shadow = match &spec.shadow {
            None => None,
            Some(s) => {
                let adapter = known(&s.adapter, format!("{path}.shadow.adapter"))?;
                let stats = live.stats(Role::Shadow, &adapter);
                Some(Shadow { adapter, share: s.share, stats })
            }
        };
        Ok(Experiment {
            name: Arc::from(spec.name.as_str()),
            scope,
            sticky: spec.sticky.clone(),
            arms,
            config_weights,
            shadow,
            live,
        })
    }

    pub fn control(&self) -> &Arc<str> {
        &self.arms[0].adapter
    }

    fn named(&self, weights: &[f64]) -> Vec<(String, f64)> {
        self.arms.iter().zip(weights).map(|(a, w)| (a.adapter.to_string(), *w)).collect()
    }

    /// The weights in force, one per arm, normalised: those set at run time while the
    /// config's are the ones they replaced, else the config's.
    pub fn weights(&self) -> Vec<f64> {
        let config = normalise(&self.config_weights).unwrap_or_default();
        let Some(o) = self.live.weights.load_full().filter(|o| o.config == self.named(&self.config_weights)) else {
            return config;
        };
        let given: Vec<f64> = self
            .arms
            .iter()
            .map(|a| o.weights.iter().find(|(n, _)| *n == *a.adapter).map(|(_, w)| *w).unwrap_or(0.0))
            .collect();
        normalise(&given).unwrap_or(config)
    }

    /// Run-time weights, one per arm in arm order, checked; they hold while the config's
    /// weights stay as they are now.
    pub fn weight_override(&self, weights: &[f64]) -> Result<WeightOverride, String> {
        if weights.len() != self.arms.len() {
            return Err(format!(
                "experiment '{}' has {} arms, got {} weights",
                self.name,
                self.arms.len(),
                weights.len()
            ));
        }
        normalise(weights)?;
        Ok(WeightOverride { weights: self.named(weights), config: self.named(&self.config_weights) })
    }

    /// The sticky value a request offers, if any.
    fn sticky_value<'a>(&self, input: &StickyInput<'a>) -> Option<&'a str> {
        match &self.sticky {
            StickyKey::Tenant => input.caller.map(|c| &*c.tenant.name),
            StickyKey::User => input.user.filter(|u| !u.is_empty()),
            StickyKey::Header(h) => input.headers.iter().find(|(k, _)| k == h).map(|(_, v)| v.as_str()),
        }
    }

    /// The arm for a sticky value (or a random draw without one).
    pub fn arm_for(&self, value: Option<&str>) -> usize {
        let u = match value {
            Some(v) => hash::unit(hash::stable_hash(&[self.name.as_bytes(), v.as_bytes()])),
            None => rng::next_f64(),
        };
        let weights = self.weights();
        let mut acc = 0.0;
        for (i, w) in weights.iter().enumerate() {
            acc += w;
            if u < acc {
                return i;
            }
        }
        weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
    }

    /// This router's own statistics of each arm.
    pub fn local_counts(&self) -> Vec<(Role, String, Counts)> {
        let shadow = self.shadow.iter().map(|s| (Role::Shadow, s.adapter.to_string(), s.stats.counts()));
        self.arms.iter().map(|a| (Role::Arm, a.adapter.to_string(), a.stats.counts())).chain(shadow).collect()
    }

    /// The experiment with its weights and each arm's statistics (`totals`: the fleet's, by
    /// role and adapter; an arm without any shows zeros).
    pub fn to_json(&self, categories: &[crate::plan::Category], totals: &[(Role, String, Counts)]) -> Value {
        let stats = |role: Role, adapter: &str| {
            totals
                .iter()
                .find(|(r, a, _)| *r == role && a == adapter)
                .map(|(_, _, c)| c.clone())
                .unwrap_or_default()
                .to_json()
        };
        let weights = self.weights();
        let arms: Vec<Value> = self
            .arms
            .iter()
            .zip(weights.iter())
            .enumerate()
            .map(|(i, (a, w))| json!({"adapter": &*a.adapter, "weight": w, "control": i == 0, "stats": stats(Role::Arm, &a.adapter)}))
            .collect();
        let (tenant, category) = match &self.scope {
            Scope::Tenant(t) => (Some(&**t), None),
            Scope::Category(c) => (None, Some(&*categories[*c].name)),
        };
        let sticky = match &self.sticky {
            StickyKey::Tenant => "tenant".to_string(),
            StickyKey::User => "user".to_string(),
            StickyKey::Header(h) => format!("header:{h}"),
        };
        json!({
            "name": &*self.name, "tenant": tenant, "category": category, "sticky_key": sticky, "arms": arms,
            "shadow": self.shadow.as_ref().map(|s| json!({"adapter": &*s.adapter, "share": s.share, "stats": stats(Role::Shadow, &s.adapter)})),
        })
    }
}

fn normalise(weights: &[f64]) -> Result<Vec<f64>, String> {
    if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        return Err("weights must be numbers of at least 0".into());
    }
    let sum: f64 = weights.iter().sum();
    if sum <= 0.0 {
        return Err("at least one weight must be above 0".into());
    }
    Ok(weights.iter().map(|w| w / sum).collect())
}

/// The experiment, if any, that splits a request headed for `adapter` (in `category`, from
/// `caller`), and the arm it gets. `may_use` says whether the caller may use an adapter; a
/// request is only split when it may use every arm.
pub fn assign(
    experiments: &[Arc<Experiment>],
    adapter: &str,
    category: Option<usize>,
    explicit: bool,
    input: &StickyInput<'_>,
    may_use: impl Fn(&str) -> bool,
) -> Option<Assignment> {
    let e = experiments.iter().find(|e| {
        &**e.control() == adapter
            && match &e.scope {
                Scope::Tenant(t) => input.caller.is_some_and(|c| c.tenant.name == *t),
                Scope::Category(c) => explicit || category == Some(*c),
            }
            && e.arms.iter().all(|a| may_use(&a.adapter))
    })?;
    let arm = e.arm_for(e.sticky_value(input));
    let shadow = e.shadow.as_ref().is_some_and(|s| may_use(&s.adapter) && rng::next_f64() < s.share);
    Some(Assignment { experiment: e.clone(), arm, shadow })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ArmSpec;

    fn experiment(weights: &[f64]) -> Experiment {
        let mut adapters = HashMap::new();
        for n in ["v1", "v2"] {
            adapters.insert(
                Arc::from(n),
                Adapter {
                    name: n.into(),
                    served: n.into(),
                    base: 0,
                    path: None,
                    min_replicas: 1,
                    max_replicas: None,
                    max_concurrency: None,
                    active: Default::default(),
                    rank_seed: 0,
                },
            );
        }
        let spec = ExperimentSpec {
            name: "exp".into(),
            tenant: None,
            category: Some("finance".into()),
            sticky: StickyKey::User,
            arms: vec![
                ArmSpec { adapter: "v1".into(), weight: weights[0] },
                ArmSpec { adapter: "v2".into(), weight: weights[1] },
            ],
            shadow: None,
        };
        let cats = HashMap::from([("finance".to_string(), 0)]);
        Experiment::compile(&spec, "experiments[0]", &adapters, &cats, Default::default()).unwrap()
    }

    #[test]
    fn split_holds_its_ratio_and_users_stay_put() {
        let e = experiment(&[0.8, 0.2]);
        let users: Vec<String> = (0..20_000).map(|i| format!("user-{i}")).collect();
        let second = users.iter().filter(|u| e.arm_for(Some(u)) == 1).count() as f64 / users.len() as f64;
        // Binomial sd for n = 20,000, p = 0.2 is 0.0028: five of them.
        assert!((second - 0.2).abs() < 0.015, "{second}");
        for u in users.iter().take(100) {
            assert_eq!(e.arm_for(Some(u)), e.arm_for(Some(u)));
        }
        let o = e.weight_override(&[0.0, 1.0]).unwrap();
        e.live.weights.store(Some(Arc::new(o)));
        assert!(users.iter().take(100).all(|u| e.arm_for(Some(u)) == 1));
        assert!(e.weight_override(&[1.0]).is_err());
        assert!(e.weight_override(&[0.0, 0.0]).is_err());
    }

    #[test]
    fn run_time_weights_hold_until_the_config_changes() {
        let e = experiment(&[0.5, 0.5]);
        e.live.weights.store(Some(Arc::new(e.weight_override(&[1.0, 3.0]).unwrap())));
        assert_eq!(e.weights(), vec![0.25, 0.75]);
        // The same live state seen by a plan whose config weights were edited: the config wins.
        let edited = Experiment { config_weights: vec![0.9, 0.1], ..experiment(&[0.9, 0.1]) };
        edited.live.weights.store(e.live.weights.load_full());
        assert_eq!(edited.weights(), vec![0.9, 0.1]);
    }

    #[test]
    fn only_requests_for_the_control_in_scope_are_split() {
        let e = Arc::new(experiment(&[0.0, 1.0]));
        let input = StickyInput { caller: None, user: Some("u"), headers: &[] };
        let all = |_: &str| true;
        let exps = [e.clone()];
        assert_eq!(assign(&exps, "v1", Some(0), false, &input, all).map(|a| a.arm), Some(1));
        assert!(assign(&exps, "v1", Some(1), false, &input, all).is_none());
        assert_eq!(assign(&exps, "v1", None, true, &input, all).map(|a| a.label()), Some("exp=v2".into()));
        assert!(assign(&exps, "v2", Some(0), true, &input, all).is_none());
        assert!(assign(&exps, "v1", Some(0), false, &input, |a| a != "v2").is_none());
    }
}
