//! From the plan's endpoints to replicas. A configured address is one replica, there at once.
//! An endpoint with `discovery: dns` names a DNS name (a Kubernetes headless Service, say):
//! every A/AAAA record is a replica, looked up every `refresh_ms`. A new address is probed
//! and synced before it takes traffic (it joins unhealthy); one that disappears gets no new
//! requests, and those in flight finish on it. A and AAAA records are asked for separately:
//! a failed lookup keeps the addresses of its family as they were (some servers refuse AAAA
//! queries for names they only know IPv4 addresses of); a name with no records has none.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::TokioResolver;

use super::{health, ReplicaSpec};
use crate::observe::log;
use crate::plan::{Discovery, EndpointSpec, Plan, PlanError};
use crate::proxy::RouterState;
use crate::state::membership::Changes;
use crate::state::LiveState;

/// The replica of a configured address, or of one address a DNS name gave.
fn replica_spec(e: &EndpointSpec, name: String, host: String) -> ReplicaSpec {
    ReplicaSpec {
        name,
        group: e.name.clone(),
        host,
        port: e.port,
        weight: e.weight,
        api_key: e.api_key.clone(),
        max_loras: e.max_loras,
    }
}

/// Sets the members the plan's endpoints give: configured addresses as they are; DNS
/// endpoints keep what their last lookup found.
pub fn apply_plan(plan: &Plan, live: &LiveState) -> Result<Changes, PlanError> {
    let groups: Vec<(String, Option<Vec<ReplicaSpec>>)> = plan
        .endpoints
        .iter()
        .map(|e| {
            let members = match e.discovery {
                Discovery::Static => Some(vec![replica_spec(e, e.name.clone(), e.host.clone())]),
                Discovery::Dns { .. } => None,
            };
            (e.name.clone(), members)
        })
        .collect();
    live.replicas.set(&groups).map_err(|m| PlanError::new("endpoints", m))
}

/// `ip` or `ip:port` (default 53).
fn nameserver(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>().ok().or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

fn resolver(nameservers: &[String]) -> Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if nameservers.is_empty() {
        TokioResolver::builder(provider).map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?
    } else {
        let mut servers = Vec::new();
        for s in nameservers {
            let addr = nameserver(s).ok_or_else(|| format!("'{s}' is not a nameserver address"))?;
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut ns.connections {
                c.port = addr.port();
            }
            servers.push(ns);
        }
        TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    // Every lookup asks the server: members change faster than records' TTLs say.
    opts.cache_size = 0;
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    builder.build().map_err(|e| format!("cannot build the DNS resolver: {e}"))
}

/// The addresses of one family (`A` or `AAAA`) `host` has now; `Ok(empty)` when it has no
/// such records, `Err` when the lookup failed (server down, timeout, refused).
async fn lookup(resolver: &TokioResolver, host: &str, family: RecordType) -> Result<Vec<IpAddr>, String> {
    match resolver.lookup(host, family).await {
        Ok(found) => Ok(found.answers().iter().filter_map(|r| r.data.ip_addr()).collect()),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(vec![]),
        Err(e) => Err(e.to_string()),
    }
}

/// The addresses `host` resolves to now, sorted, each family's from its lookup or, where that
/// failed, from `before`; `Err` when both lookups failed.
async fn resolve(resolver: &TokioResolver, host: &str, before: &[IpAddr]) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let (v4, v6) = tokio::join!(lookup(resolver, host, RecordType::A), lookup(resolver, host, RecordType::AAAA));
    if let (Err(a), Err(_)) = (&v4, &v6) {
        return Err(a.clone());
    }
    let kept = |v6: bool| before.iter().copied().filter(move |ip| ip.is_ipv6() == v6);
    let mut ips: Vec<IpAddr> = match v4 {
        Ok(found) => found,
        Err(_) => kept(false).collect(),
    };
    ips.extend(v6.unwrap_or_else(|_| kept(true).collect()));
    ips.sort();
    ips.dedup();
    Ok(ips)
}

/// The replica specs for what a DNS endpoint resolved to.
fn discovered(e: &EndpointSpec, ips: &[IpAddr]) -> Vec<ReplicaSpec> {
    ips.iter()
        .map(|ip| {
            let host = ip.to_string();
            let spec = replica_spec(e, String::new(), host);
            let name = format!("{}/{}", e.name, spec.authority());
            ReplicaSpec { name, ..spec }
        })
        .collect()
}

/// Looks DNS endpoints up when they are due, until `stop` changes.
pub async fn run(state: Arc<RouterState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut resolvers: Option<(Vec<String>, TokioResolver)> = None;
    let mut due: HashMap<String, Instant> = HashMap::new();
    let mut failing: HashMap<String, String> = HashMap::new();
    loop {
        let plan = state.plan.load_full();
        let dns: Vec<(&EndpointSpec, u64)> = plan
            .endpoints
            .iter()
            .filter_map(|e| match e.discovery {
                Discovery::Dns { refresh_ms } => Some((e, refresh_ms)),
                Discovery::Static => None,
            })
            .collect();
        if !dns.is_empty() && resolvers.as_ref().is_none_or(|(ns, _)| *ns != plan.fleet.nameservers) {
            match resolver(&plan.fleet.nameservers) {
                Ok(r) => resolvers = Some((plan.fleet.nameservers.clone(), r)),
                Err(e) => log::warn(&format!("DNS discovery is off: {e}")),
            }
        }
        if let Some((_, resolver)) = &resolvers {
            for (e, refresh_ms) in dns {
                let now = Instant::now();
                if due.get(&e.name).is_some_and(|t| *t > now) {
                    continue;
                }
                due.insert(e.name.clone(), now + Duration::from_millis(refresh_ms.max(100)));
                let before: Vec<IpAddr> = {
                    let set = state.live.replicas.snapshot();
                    set.group(&e.name).iter().filter_map(|&i| set.list[i].host.parse().ok()).collect()
                };
                match resolve(resolver, &e.host, &before).await {
                    Ok(ips) => {
                        if failing.remove(&e.name).is_some() {
                            log::info(&format!("endpoint '{}': DNS lookups of {} work again", e.name, e.host));
                        }
                        join(&state, e, &ips).await;
                    }
                    Err(why) => {
                        if failing.insert(e.name.clone(), why.clone()).is_none() {
                            log::warn(&format!(
                                "endpoint '{}': looking up {} failed, keeping its replicas: {why}",
                                e.name, e.host
                            ));
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Makes `ips` the endpoint's members; those new to it are probed at once, so they take
/// traffic as soon as they answer (not a health interval later).
async fn join(state: &Arc<RouterState>, e: &EndpointSpec, ips: &[IpAddr]) {
    let specs = discovered(e, ips);
    let changes = match state.live.replicas.replace_group(&e.name, &specs) {
        Ok(c) => c,
        Err(why) => {
            log::warn(&format!("endpoint '{}': {why}", e.name));
            return;
        }
    };
    for r in &changes.left {
        log::info(&format!(
            "endpoint '{}': replica {} left ({} requests in flight finish there)",
            e.name,
            r.name,
            r.inflight()
        ));
    }
    for r in changes.joined {
        log::info(&format!("endpoint '{}': replica {} joined", e.name, r.name));
        let state = state.clone();
        tokio::spawn(async move { health::check(&state, &r).await });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing;

    #[test]
    fn names_and_nameservers() {
        let mut spec = testing::spec_json();
        spec["endpoints"][0]["discovery"] = serde_json::json!({"type": "dns", "refresh_ms": 1000});
        let (live, plan) = testing::compiled(&spec);
        assert!(live.replicas.snapshot().group("e1").is_empty());
        let found = discovered(&plan.endpoints[0], &["10.0.0.2".parse().unwrap(), "::1".parse().unwrap()]);
        assert_eq!(found[0].name, "e1/10.0.0.2:9");
        assert_eq!(found[1].name, "e1/[::1]:9");
        assert_eq!(nameserver("127.0.0.1:5353"), Some("127.0.0.1:5353".parse().unwrap()));
        assert_eq!(nameserver("::1"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(nameserver("resolver"), None);
    }
}
