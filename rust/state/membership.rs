//! Which replicas exist now: the members of each endpoint (a configured address, or every
//! address a DNS name resolves to). Readers take an immutable `ReplicaSet` snapshot per
//! request; writers (reloads, discovery) replace it whole, keeping the same `Replica` for an
//! address that stays, so health and residency carry over.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::replica::{Replica, ReplicaSpec};

#[derive(Debug, Default)]
pub struct ReplicaSet {
    pub list: Vec<Arc<Replica>>,
    /// Each endpoint, in config order, with its members' indexes into `list`.
    groups: Vec<(Arc<str>, Vec<usize>)>,
}

impl ReplicaSet {
    /// The members of an endpoint (none for an unknown one, or one with no address yet).
    pub fn group(&self, name: &str) -> &[usize] {
        self.groups.iter().find(|(n, _)| &**n == name).map(|(_, m)| m.as_slice()).unwrap_or(&[])
    }

    pub fn find(&self, name: &str) -> Option<&Arc<Replica>> {
        self.list.iter().find(|r| &*r.name == name)
    }

    pub fn any_healthy(&self) -> bool {
        self.list.iter().any(|r| r.is_healthy())
    }

    fn build(groups: Vec<(Arc<str>, Vec<Arc<Replica>>)>) -> ReplicaSet {
        let mut set = ReplicaSet::default();
        for (name, members) in groups {
            let start = set.list.len();
            set.list.extend(members);
            set.groups.push((name, (start..set.list.len()).collect()));
        }
        set
    }

    fn members(&self, group: &str) -> Vec<Arc<Replica>> {
        self.group(group).iter().map(|&i| self.list[i].clone()).collect()
    }
}

/// Who joined and who left in one change.
#[derive(Debug, Default)]
pub struct Changes {
    pub joined: Vec<Arc<Replica>>,
    pub left: Vec<Arc<Replica>>,
}

#[derive(Default)]
pub struct Membership {
    current: ArcSwap<ReplicaSet>,
    /// Serialises writers; readers never wait.
    write: Mutex<()>,
}

impl Membership {
    pub fn snapshot(&self) -> Arc<ReplicaSet> {
        self.current.load_full()
    }

    /// Sets the endpoints, in order: `Some(specs)` gives an endpoint's members (configured
    /// addresses, joining healthy), `None` keeps what discovery found for it. Endpoints not
    /// named are dropped. A spec that names a replica of the current set keeps it.
    pub fn set(&self, groups: &[(String, Option<Vec<ReplicaSpec>>)]) -> Result<Changes, String> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.current.load_full();
        let mut next = Vec::with_capacity(groups.len());
        for (name, specs) in groups {
            let members = match specs {
                Some(specs) => reuse(&old, specs, true)?,
                None => old.members(name),
            };
            next.push((Arc::from(name.as_str()), members));
        }
        Ok(self.swap(&old, ReplicaSet::build(next)))
    }

    /// Replaces one endpoint's members with what discovery found; new ones join unhealthy
    /// until a probe passes. Other endpoints are untouched.
    pub fn replace_group(&self, group: &str, specs: &[ReplicaSpec]) -> Result<Changes, String> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.current.load_full();
        if !old.groups.iter().any(|(n, _)| &**n == group) {
            return Ok(Changes::default());
        }
        let mut next = Vec::with_capacity(old.groups.len());
        for (n, _) in &old.groups {
            let members = if &**n == group { reuse(&old, specs, false)? } else { old.members(n) };
            next.push((n.clone(), members));
        }
        Ok(self.swap(&old, ReplicaSet::build(next)))
    }

    fn swap(&self, old: &ReplicaSet, next: ReplicaSet) -> Changes {
        let in_set = |set: &ReplicaSet, r: &Arc<Replica>| set.list.iter().any(|x| Arc::ptr_eq(x, r));
        let changes = Changes {
            joined: next.list.iter().filter(|r| !in_set(old, r)).cloned().collect(),
            left: old.list.iter().filter(|r| !in_set(&next, r)).cloned().collect(),
        };
        self.current.store(Arc::new(next));
        changes
    }
}

/// The replicas for `specs`: the current one where a spec names it (updated), else a new one.
fn reuse(old: &ReplicaSet, specs: &[ReplicaSpec], healthy: bool) -> Result<Vec<Arc<Replica>>, String> {
    specs
        .iter()
        .map(|s| match old.list.iter().find(|r| r.is(s)) {
            Some(r) => r.update(s).map(|()| r.clone()),
            None => Replica::new(s, healthy).map(Arc::new),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(group: &str, name: &str, port: u16) -> ReplicaSpec {
        ReplicaSpec {
            name: name.into(),
            group: group.into(),
            host: "127.0.0.1".into(),
            port,
            weight: 1.0,
            api_key: None,
            max_loras: 2,
        }
    }

    #[test]
    fn replicas_survive_changes_and_discovered_ones_join_unhealthy() {
        let m = Membership::default();
        let c = m.set(&[("a".into(), Some(vec![spec("a", "a", 1)])), ("d".into(), None)]).unwrap();
        assert_eq!(c.joined.len(), 1);
        let a = m.snapshot().find("a").unwrap().clone();
        a.mark_unhealthy();
        let c = m.replace_group("d", &[spec("d", "d/x:2", 2), spec("d", "d/y:3", 3)]).unwrap();
        assert_eq!((c.joined.len(), c.left.len()), (2, 0));
        let set = m.snapshot();
        assert_eq!(set.group("d").len(), 2);
        assert!(!set.find("d/x:2").unwrap().is_healthy());
        // A reload keeps both the configured replica (and its state) and the discovered ones.
        m.set(&[("a".into(), Some(vec![spec("a", "a", 1)])), ("d".into(), None)]).unwrap();
        let set = m.snapshot();
        assert!(Arc::ptr_eq(set.find("a").unwrap(), &a) && !a.is_healthy());
        assert_eq!(set.group("d").len(), 2);
        let c = m.replace_group("d", &[spec("d", "d/y:3", 3)]).unwrap();
        assert_eq!((c.joined.len(), c.left.len()), (0, 1));
        assert_eq!(&*c.left[0].name, "d/x:2");
    }
}
