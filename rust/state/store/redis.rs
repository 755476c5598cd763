//! The store shared by a fleet of routers: one Redis (TLS with `rediss://`, AUTH with a user
//! name and password, a database number), through the `redis` crate's multiplexed tokio
//! connection.
//!
//! Every call runs under `timeout`, behind a circuit breaker: a failure drops the connection
//! (a black-holed server never answers on it again) and opens the circuit, so calls fail at
//! once until a probe succeeds. While Redis is unreachable a quota check follows
//! `on_error`: admit, refuse, or count in the process against limit / expected routers.
//!
//! Keys, under the fleet's prefix: `records:<kind>` (a hash of run-time records),
//! `quota:<tenant>` (one-second buckets, `r<second>` and `t<second>`, on the server's clock),
//! `stats:<experiment>` (`<role>|<adapter>|<counter>` increments), `load:...` (locks) and
//! `epoch` (marks the data a fleet has written: missing after a restart that lost it, so the
//! routers write back what they know). Changes are announced on the `events` channel, and
//! the requests each router sent where (for the others' residency models) on `sends`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisResult, Script};
use serde_json::json;
use tokio::sync::broadcast;

use super::breaker::{Breaker, Gate};
use super::memory::MemoryStore;
use super::{Admission, Event, Kind, LockToken, RedisSpec, StoreErrorPolicy, Unavailable};
use crate::state::experiments::{Counts, Role};
use crate::state::quotas::{self, Limits, Verdict, WINDOW_S};
use crate::util::rng;

/// Counts a request in the tenant's window if the limits allow it (quotas.rs has the same
/// rule): `{1}` admitted, else `{0, which (1 requests, 2 tokens), retry after seconds}`.
const ADMIT: &str = r"
local now = tonumber(redis.call('TIME')[1])
local rpm, tpm, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local h = redis.call('HGETALL', KEYS[1])
local old, rb, tb, r, t = {}, {}, {}, 0, 0
for i = 1, #h, 2 do
  local f, v = h[i], tonumber(h[i + 1])
  local sec = tonumber(string.sub(f, 2))
  if sec + window <= now then
    old[#old + 1] = f
  elseif string.sub(f, 1, 1) == 'r' then
    r = r + v; rb[#rb + 1] = {sec, v}
  else
    t = t + v; tb[#tb + 1] = {sec, v}
  end
end
if #old > 0 then redis.call('HDEL', KEYS[1], unpack(old)) end
local function retry(b, total, limit)
  table.sort(b, function(x, y) return x[1] < y[1] end)
  for _, e in ipairs(b) do
    total = total - e[2]
    if total < limit then return math.max(e[1] + window - now, 1) end
  end
  return window
end
if rpm > 0 and r >= rpm then return {0, 1, retry(rb, r, rpm)} end
if tpm > 0 and t >= tpm then return {0, 2, retry(tb, t, tpm)} end
redis.call('HINCRBY', KEYS[1], 'r' .. now, 1)
redis.call('EXPIRE', KEYS[1], window + 1)
return {1}
";

const CHARGE: &str = r"
local now = tonumber(redis.call('TIME')[1])
redis.call('HINCRBY', KEYS[1], 't' .. now, ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]) + 1)
return 1
";

/// Sets (or with ARGV[4] = '1', deletes) a record only if it still holds the expected value
/// (ARGV[1] = '1': that there is none), and announces the change: `1` done, `0` it changed.
const SWAP: &str = r"
local cur = redis.call('HGET', KEYS[1], ARGV[3])
if ARGV[1] == '1' then
  if cur then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
if ARGV[4] == '1' then redis.call('HDEL', KEYS[1], ARGV[3]) else redis.call('HSET', KEYS[1], ARGV[3], ARGV[5]) end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
";

const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Experiment statistics are kept this long after their last change.
const STATS_TTL_S: u64 = 30 * 24 * 3600;
/// How often the events connection is pinged, so a dead one is replaced.
const PING_EVERY: Duration = Duration::from_secs(5);

pub struct RedisStore {
    client: Client,
    /// `host:port/db`, for messages (never the credentials).
    address: String,
    conn: ArcSwapOption<MultiplexedConnection>,
    connecting: tokio::sync::Mutex<()>,
    breaker: Breaker,
    timeout: Duration,
    prefix: String,
    policy: StoreErrorPolicy,
    expected_replicas: u64,
    /// Quota windows for `on_error: local`.
    local: MemoryStore,
    events: broadcast::Sender<Event>,
    /// This router's id in announcements, so it skips its own.
    origin: String,
    /// The events connection is subscribed.
    watching: AtomicBool,
    admit: Script,
    charge: Script,
    swap: Script,
    unlock: Script,
}

impl RedisStore {
    pub fn new(spec: &RedisSpec, prefix: &str) -> Result<RedisStore, String> {
        crate::util::tls::install_crypto_provider();
        let info = spec.url.as_str().into_connection_info().map_err(|e| format!("'{}': {e}", redact(&spec.url)))?;
        let mut settings = info.redis_settings().clone();
        if let Some(u) = &spec.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &spec.password {
            settings = settings.set_password(p);
        }
        let address = format!("{}/{}", info.addr(), settings.db());
        // Small commands answered at once: never held back by Nagle's algorithm.
        let info = info
            .set_redis_settings(settings)
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = match &spec.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("cannot read the CA file {path}: {e}"))?;
                Client::build_with_tls(info, redis::TlsCertificates { client_tls: None, root_cert: Some(pem) })
            }
            None => Client::open(info),
        }
        .map_err(|e| format!("'{}': {e}", redact(&spec.url)))?;
        let (events, _) = broadcast::channel(1024);
        Ok(RedisStore {
            client,
            address,
            conn: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
            breaker: Breaker::new(Duration::from_millis(spec.probe_interval_ms)),
            timeout: Duration::from_millis(spec.timeout_ms),
            prefix: prefix.to_string(),
            policy: spec.on_error,
            expected_replicas: spec.expected_replicas,
            local: MemoryStore::default(),
            events,
            origin: format!("{:016x}", rng::next_u64()),
            watching: AtomicBool::new(false),
            admit: Script::new(ADMIT),
            charge: Script::new(CHARGE),
            swap: Script::new(SWAP),
            unlock: Script::new(UNLOCK),
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn reachable(&self) -> bool {
        self.breaker.is_closed() && self.watching.load(Ordering::Relaxed)
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    fn config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new().set_connection_timeout(Some(self.timeout)).set_response_timeout(Some(self.timeout))
    }

    async fn connection(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(c) = self.conn.load_full() {
            return Ok((*c).clone());
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.conn.load_full() {
            return Ok((*c).clone());
        }
        let c = self.client.get_multiplexed_async_connection_with_config(&self.config()).await?;
        self.conn.store(Some(std::sync::Arc::new(c.clone())));
        Ok(c)
    }

    /// Runs `op` on the connection under the timeout and the breaker.
    async fn with<T>(
        &self,
        op: impl AsyncFnOnce(&mut MultiplexedConnection) -> RedisResult<T>,
    ) -> Result<T, Unavailable> {
        if self.breaker.gate() == Gate::Open {
            return Err(Unavailable(format!(
                "Redis at {} failed; it is tried again once every {} ms",
                self.address,
                self.breaker.interval().as_millis()
            )));
        }
        let outcome = tokio::time::timeout(self.timeout, async {
            let mut c = self.connection().await?;
            op(&mut c).await
        })
        .await;
        let why = match outcome {
            Ok(Ok(v)) => {
                self.breaker.success();
                return Ok(v);
            }
            Ok(Err(e)) => format!("Redis at {}: {e}", self.address),
            Err(_) => format!("Redis at {} did not answer within {} ms", self.address, self.timeout.as_millis()),
        };
        // A connection that failed or went silent is never used again.
        self.conn.store(None);
        self.breaker.failure();
        Err(Unavailable(why))
    }

    pub async fn admit(&self, tenant: &str, limits: Limits) -> Result<Admission, Unavailable> {
        let key = self.key(&["quota", tenant]);
        let arg = |l: Option<u64>| l.unwrap_or(0);
        let answer: Result<Vec<u64>, Unavailable> = self
            .with(async |c| {
                self.admit.key(&key).arg(arg(limits.rpm)).arg(arg(limits.tpm)).arg(WINDOW_S).invoke_async(c).await
            })
            .await;
        match answer {
            Ok(v) => {
                let verdict = match v.as_slice() {
                    [0, which, retry] => {
                        let (limit, value) = if *which == 1 {
                            (quotas::Limit::Requests, arg(limits.rpm))
                        } else {
                            (quotas::Limit::Tokens, arg(limits.tpm))
                        };
                        Verdict::Limited { limit, value, retry_after_s: *retry }
                    }
                    _ => Verdict::Admitted,
                };
                Ok(Admission { verdict, degraded: None })
            }
            Err(Unavailable(why)) => match self.policy {
                StoreErrorPolicy::Allow => {
                    Ok(Admission { verdict: Verdict::Admitted, degraded: Some(format!("{why}; admitted unchecked")) })
                }
                StoreErrorPolicy::Deny => Err(Unavailable(why)),
                StoreErrorPolicy::Local => {
                    let share = limits.share(self.expected_replicas);
                    Ok(Admission {
                        verdict: self.local.admit(tenant, share),
                        degraded: Some(format!(
                            "{why}; checked in this router against 1/{} of the limits",
                            self.expected_replicas
                        )),
                    })
                }
            },
        }
    }

    pub async fn charge(&self, tenant: &str, tokens: u64) -> Result<(), Unavailable> {
        if self.policy == StoreErrorPolicy::Local {
            // The local window is what counts while Redis is away; keep it current.
            self.local.charge(tenant, tokens);
        }
        let key = self.key(&["quota", tenant]);
        self.with(async |c| self.charge.key(&key).arg(tokens).arg(WINDOW_S).invoke_async::<i64>(c).await).await?;
        Ok(())
    }

    pub async fn get(&self, kind: Kind, name: &str) -> Result<Option<String>, Unavailable> {
        let key = self.key(&["records", kind.name()]);
        self.with(async |c| redis::cmd("HGET").arg(&key).arg(name).query_async(c).await).await
    }

    pub async fn all(&self, kind: Kind) -> Result<Vec<(String, String)>, Unavailable> {
        let key = self.key(&["records", kind.name()]);
        let mut v: Vec<(String, String)> =
            self.with(async |c| redis::cmd("HGETALL").arg(&key).query_async(c).await).await?;
        v.sort();
        Ok(v)
    }

    fn announcement(&self, kind: Kind, name: &str) -> String {
        json!({"origin": self.origin, "kind": kind.name(), "name": name}).to_string()
    }

    /// Writes a record and announces it, atomically. With `only_new`, an existing record is
    /// kept.
    async fn write(&self, kind: Kind, name: &str, value: &str, only_new: bool) -> Result<(), Unavailable> {
        let key = self.key(&["records", kind.name()]);
        let channel = self.key(&["events"]);
        let message = self.announcement(kind, name);
        self.with(async |c| {
            let mut p = redis::pipe();
            p.atomic();
            p.cmd(if only_new { "HSETNX" } else { "HSET" }).arg(&key).arg(name).arg(value).ignore();
            p.cmd("PUBLISH").arg(&channel).arg(&message).ignore();
            p.query_async::<()>(c).await
        })
        .await
    }

    pub async fn put(&self, kind: Kind, name: &str, value: &str) -> Result<(), Unavailable> {
        self.write(kind, name, value, false).await
    }

    pub async fn put_new(&self, kind: Kind, name: &str, value: &str) -> Result<(), Unavailable> {
        self.write(kind, name, value, true).await
    }

    pub async fn swap(
        &self,
        kind: Kind,
        name: &str,
        expected: Option<&str>,
        value: Option<&str>,
    ) -> Result<bool, Unavailable> {
        let key = self.key(&["records", kind.name()]);
        let channel = self.key(&["events"]);
        let message = self.announcement(kind, name);
        let flag = |b: bool| if b { "1" } else { "0" };
        let done: i64 = self
            .with(async |c| {
                self.swap
                    .key(&key)
                    .arg(flag(expected.is_none()))
                    .arg(expected.unwrap_or(""))
                    .arg(name)
                    .arg(flag(value.is_none()))
                    .arg(value.unwrap_or(""))
                    .arg(&channel)
                    .arg(&message)
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(done == 1)
    }

    pub async fn try_lock(&self, key: &str, ttl: Duration) -> Result<Option<LockToken>, Unavailable> {
        let token = format!("{}-{:016x}", self.origin, rng::next_u64());
        let ms = ttl.as_millis().max(1) as u64;
        let set: Option<String> = self
            .with(async |c| redis::cmd("SET").arg(key).arg(&token).arg("NX").arg("PX").arg(ms).query_async(c).await)
            .await?;
        Ok(set.map(|_| LockToken(token)))
    }

    pub async fn unlock(&self, key: &str, token: &LockToken) -> Result<(), Unavailable> {
        self.with(async |c| self.unlock.key(key).arg(&token.0).invoke_async::<i64>(c).await).await?;
        Ok(())
    }

    pub async fn add_counts(
        &self,
        experiment: &str,
        role: Role,
        adapter: &str,
        delta: &Counts,
    ) -> Result<(), Unavailable> {
        let key = self.key(&["stats", experiment]);
        self.with(async |c| {
            let mut p = redis::pipe();
            for (field, v) in &delta.0 {
                p.cmd("HINCRBY").arg(&key).arg(format!("{}|{adapter}|{field}", role.name())).arg(*v).ignore();
            }
            p.cmd("EXPIRE").arg(&key).arg(STATS_TTL_S).ignore();
            p.query_async::<()>(c).await
        })
        .await
    }

    pub async fn counts(&self, experiment: &str) -> Result<Vec<(Role, String, Counts)>, Unavailable> {
        let key = self.key(&["stats", experiment]);
        let fields: Vec<(String, u64)> =
            self.with(async |c| redis::cmd("HGETALL").arg(&key).query_async(c).await).await?;
        let mut out: Vec<(Role, String, Counts)> = Vec::new();
        for (f, v) in fields {
            let mut parts = f.splitn(3, '|');
            let (Some(role), Some(adapter), Some(counter)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let role = if role == Role::Shadow.name() { Role::Shadow } else { Role::Arm };
            match out.iter_mut().find(|(r, a, _)| *r == role && a == adapter) {
                Some((_, _, c)) => {
                    c.0.insert(counter.to_string(), v);
                }
                None => out.push((role, adapter.to_string(), Counts([(counter.to_string(), v)].into()))),
            }
        }
        Ok(out)
    }

    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub async fn announce_sends(&self, sends: &[(String, String)]) -> Result<(), Unavailable> {
        let channel = self.key(&["sends"]);
        let message = json!({"origin": self.origin, "sends": sends}).to_string();
        self.with(async |c| redis::cmd("PUBLISH").arg(&channel).arg(&message).query_async::<i64>(c).await).await?;
        Ok(())
    }

    /// Listens to other routers' announcements until `stop` changes, reconnecting with
    /// backoff; after each (re)connection readers are told to read everything again (and,
    /// when Redis came back without the fleet's data, to write back what they know).
    pub async fn watch(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let channels = [self.key(&["events"]), self.key(&["sends"])];
        let mut backoff = Duration::from_millis(100);
        let mut epoch: Option<String> = None;
        loop {
            match self.listen(&channels, &mut epoch, &mut stop).await {
                Ok(()) => return,
                Err(why) => {
                    if self.watching.swap(false, Ordering::Relaxed) {
                        crate::observe::log::warn(&format!(
                            "lost the connection to Redis at {} for fleet events: {why}",
                            self.address
                        ));
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// One subscription: `Ok` when stopped, `Err` when the connection failed.
    async fn listen(
        &self,
        channels: &[String],
        epoch: &mut Option<String>,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), String> {
        let connect = async {
            let mut ps = self.client.get_async_pubsub().await?;
            ps.subscribe(channels).await?;
            Ok::<_, redis::RedisError>(ps)
        };
        let ps = tokio::time::timeout(self.timeout.max(Duration::from_secs(1)), connect)
            .await
            .map_err(|_| "no answer".to_string())?
            .map_err(|e| e.to_string())?;
        let (mut sink, mut stream) = ps.split();
        // Subscribed first, then read: nothing announced in between is missed.
        if self.check_epoch(epoch).await? {
            let _ = self.events.send(Event::Reseed);
        }
        let _ = self.events.send(Event::Resync);
        if !self.watching.swap(true, Ordering::Relaxed) {
            crate::observe::log::info(&format!("listening to fleet events on Redis at {}", self.address));
        }
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { return Err("the connection closed".into()) };
                    if let Some(event) = self.parse(msg.get_channel_name(), msg.get_payload_bytes()) {
                        let _ = self.events.send(event);
                    }
                }
                _ = ping.tick() => {
                    match tokio::time::timeout(self.timeout.max(Duration::from_secs(1)), sink.ping::<String>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(e.to_string()),
                        Err(_) => return Err("a ping went unanswered".into()),
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    fn parse(&self, channel: &str, payload: &[u8]) -> Option<Event> {
        let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
        if v.get("origin")?.as_str()? == self.origin {
            return None;
        }
        if channel.ends_with(":sends") {
            return serde_json::from_value(v.get("sends")?.clone()).ok().map(Event::Sends);
        }
        let kind = Kind::parse(v.get("kind")?.as_str()?)?;
        Some(Event::Changed { kind, name: v.get("name")?.as_str()?.to_string() })
    }

    /// Checks the fleet's epoch mark: true if Redis lost the data this router had seen (so
    /// what routers know should be written back).
    async fn check_epoch(&self, seen: &mut Option<String>) -> Result<bool, String> {
        let key = self.key(&["epoch"]);
        let current: Option<String> =
            self.with(async |c| redis::cmd("GET").arg(&key).query_async(c).await).await.map_err(|e| e.0)?;
        if let Some(e) = current {
            *seen = Some(e);
            return Ok(false);
        }
        let fresh = format!("{:016x}", rng::next_u64());
        let won: Option<String> = self
            .with(async |c| redis::cmd("SET").arg(&key).arg(&fresh).arg("NX").query_async(c).await)
            .await
            .map_err(|e| e.0)?;
        let lost_data = seen.is_some();
        if won.is_some() {
            *seen = Some(fresh);
            if lost_data {
                crate::observe::log::warn(&format!(
                    "Redis at {} lost the fleet's state (restarted without it?): writing back what this router knows",
                    self.address
                ));
            }
            return Ok(lost_data);
        }
        *seen = self.with(async |c| redis::cmd("GET").arg(&key).query_async(c).await).await.map_err(|e| e.0)?;
        Ok(false)
    }
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("rediss://u:secret@host:6380/1"), "rediss://***@host:6380/1");
        assert_eq!(redact("redis://host"), "redis://host");
    }
}
