//! The store: where the state that a fleet of routers shares lives. One interface, two
//! implementations: `memory` (this process only: one router, as without a `redis:` section)
//! and `redis` (every router that names the same Redis).
//!
//! What goes through it: each tenant's quota window (the one round trip a request may make),
//! run-time records (adapters and tenants registered through the admin API, experiment
//! weights), experiment statistics (increments, summed across routers), and the lock that
//! keeps one load of an adapter on a replica at a time. A change a router writes reaches the
//! others as an `Event`; after the Redis connection comes back, `Event::Resync` tells readers
//! to read everything again, since changes may have been missed.

pub mod breaker;
pub mod memory;
pub mod redis;

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::broadcast;

use super::experiments::{Counts, Role};
use super::quotas::{Limits, Verdict};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreSpec {
    /// `None`: the state lives in this process.
    pub redis: Option<RedisSpec>,
    /// Prefix of every key and channel in a shared store.
    pub prefix: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisSpec {
    /// `redis://` or `rediss://` (TLS) `host[:port][/db]`.
    pub url: String,
    /// Credentials (from the environment, resolved by Python).
    pub username: Option<String>,
    pub password: Option<String>,
    /// CA bundle (PEM) that verifies a `rediss://` server; `None`: the system's roots.
    pub ca_file: Option<String>,
    /// Longest wait for a connection or an answer.
    pub timeout_ms: u64,
    /// How long the circuit stays open after a failure before one probe may pass.
    pub probe_interval_ms: u64,
    /// What a quota check does while Redis cannot be reached.
    pub on_error: StoreErrorPolicy,
    /// Routers in the fleet: with `local`, each enforces this share of a limit.
    pub expected_replicas: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StoreErrorPolicy {
    /// Admit the request (counted and logged).
    Allow,
    /// Answer 503.
    Deny,
    /// Enforce limit / expected_replicas in this process.
    Local,
}

/// The kinds of run-time record the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Adapters registered at run time, with their versions (python/lora_router/registry).
    Adapters,
    /// Tenants added at run time.
    Tenants,
    /// Experiment weights set at run time (state/experiments.rs `WeightOverride`).
    Experiments,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Adapters, Kind::Tenants, Kind::Experiments];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Adapters => "adapters",
            Kind::Tenants => "tenants",
            Kind::Experiments => "experiments",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Another router wrote (or deleted) this record.
    Changed { kind: Kind, name: String },
    /// Read every record again: the store (re)connected, or events were missed.
    Resync,
    /// The store lost the fleet's records (Redis restarted without them): write back what
    /// this router knows, without overwriting what others wrote back first.
    Reseed,
    /// Requests other routers sent lately, as (replica, served adapter), oldest first.
    Sends(Vec<(String, String)>),
}

/// The store cannot be reached (or answered with an error): the message says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A quota check's answer. `degraded` says why the shared counters were not used (the check
/// then followed `quotas.on_backend_error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub verdict: Verdict,
    pub degraded: Option<String>,
}

/// Proof of holding a lock, for releasing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken(pub String);

pub enum Store {
    Memory(Box<memory::MemoryStore>),
    Redis(Box<redis::RedisStore>),
}

impl Store {
    pub fn memory() -> Store {
        Store::Memory(Box::default())
    }

    pub fn from_spec(spec: &StoreSpec) -> Result<Store, String> {
        match &spec.redis {
            None => Ok(Store::memory()),
            Some(r) => Ok(Store::Redis(Box::new(redis::RedisStore::new(r, &spec.prefix)?))),
        }
    }

    /// `memory` or `redis`, for metrics and `/admin/config`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    /// Whether other routers share it.
    pub fn shared(&self) -> bool {
        matches!(self, Store::Redis(_))
    }

    /// Tells the other routers which adapters this one sent where lately (nothing to tell in
    /// the process).
    pub async fn announce_sends(&self, sends: &[(String, String)]) -> Result<(), Unavailable> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(r) => r.announce_sends(sends).await,
        }
    }

    /// Whether the store answers now (the memory store always does).
    pub fn reachable(&self) -> bool {
        match self {
            Store::Memory(_) => true,
            Store::Redis(r) => r.reachable(),
        }
    }

    /// Hears other routers' changes until `stop` changes (nothing to hear in the process).
    pub async fn watch(&self, stop: tokio::sync::watch::Receiver<bool>) {
        if let Store::Redis(r) = self {
            r.watch(stop).await;
        }
    }

    /// Counts a tenant's request if its limits allow it. `Err`: the store is unreachable and
    /// the policy says to refuse.
    pub async fn admit(&self, tenant: &str, limits: Limits) -> Result<Admission, Unavailable> {
        match self {
            Store::Memory(m) => Ok(Admission { verdict: m.admit(tenant, limits), degraded: None }),
            Store::Redis(r) => r.admit(tenant, limits).await,
        }
    }

    /// Charges a finished response's tokens to its tenant.
    pub async fn charge(&self, tenant: &str, tokens: u64) -> Result<(), Unavailable> {
        match self {
            Store::Memory(m) => {
                m.charge(tenant, tokens);
                Ok(())
            }
            Store::Redis(r) => r.charge(tenant, tokens).await,
        }
    }

    pub async fn get(&self, kind: Kind, name: &str) -> Result<Option<String>, Unavailable> {
        match self {
            Store::Memory(m) => Ok(m.get(kind, name)),
            Store::Redis(r) => r.get(kind, name).await,
        }
    }

    pub async fn all(&self, kind: Kind) -> Result<Vec<(String, String)>, Unavailable> {
        match self {
            Store::Memory(m) => Ok(m.all(kind)),
            Store::Redis(r) => r.all(kind).await,
        }
    }

    /// Writes a record; the other routers hear of it.
    pub async fn put(&self, kind: Kind, name: &str, value: &str) -> Result<(), Unavailable> {
        match self {
            Store::Memory(m) => {
                m.put(kind, name, value);
                Ok(())
            }
            Store::Redis(r) => r.put(kind, name, value).await,
        }
    }

    /// Writes a record unless one of that name exists (writing back after a loss).
    pub async fn put_new(&self, kind: Kind, name: &str, value: &str) -> Result<(), Unavailable> {
        match self {
            Store::Memory(m) => {
                if m.get(kind, name).is_none() {
                    m.put(kind, name, value);
                }
                Ok(())
            }
            Store::Redis(r) => r.put_new(kind, name, value).await,
        }
    }

    /// Replaces a record only if it still holds `expected` (`None`: that there is none);
    /// `value` `None` deletes it. `Ok(false)`: it changed meanwhile, nothing was written.
    pub async fn swap(
        &self,
        kind: Kind,
        name: &str,
        expected: Option<&str>,
        value: Option<&str>,
    ) -> Result<bool, Unavailable> {
        match self {
            Store::Memory(m) => Ok(m.swap(kind, name, expected, value)),
            Store::Redis(r) => r.swap(kind, name, expected, value).await,
        }
    }

    /// Takes the fleet-wide lock `key` for at most `ttl` (`None`: someone else holds it).
    pub async fn try_lock(&self, key: &str, ttl: Duration) -> Result<Option<LockToken>, Unavailable> {
        match self {
            Store::Memory(m) => Ok(m.try_lock(key, ttl)),
            Store::Redis(r) => r.try_lock(key, ttl).await,
        }
    }

    pub async fn unlock(&self, key: &str, token: &LockToken) -> Result<(), Unavailable> {
        match self {
            Store::Memory(m) => {
                m.unlock(key, token);
                Ok(())
            }
            Store::Redis(r) => r.unlock(key, token).await,
        }
    }

    /// Adds an arm's statistics increments to the experiment's totals.
    pub async fn add_counts(
        &self,
        experiment: &str,
        role: Role,
        adapter: &str,
        delta: &Counts,
    ) -> Result<(), Unavailable> {
        match self {
            Store::Memory(m) => {
                m.add_counts(experiment, role, adapter, delta);
                Ok(())
            }
            Store::Redis(r) => r.add_counts(experiment, role, adapter, delta).await,
        }
    }

    /// Every arm's totals of an experiment.
    pub async fn counts(&self, experiment: &str) -> Result<Vec<(Role, String, Counts)>, Unavailable> {
        match self {
            Store::Memory(m) => Ok(m.counts(experiment)),
            Store::Redis(r) => r.counts(experiment).await,
        }
    }

    /// Changes written by other routers, and resyncs.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        match self {
            Store::Memory(m) => m.events(),
            Store::Redis(r) => r.events(),
        }
    }
}
