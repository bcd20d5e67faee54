//! [`Fleet`]: one client id's lease, shared record and heartbeats in Redis.
//!
//! Every decision that two keepers could race on is one atomic step in Redis: the lease is taken
//! with `SET NX PX`, renewed and released by Lua scripts that compare the holder first, and a new
//! token is published by a Lua compare-and-set on (lease holder, epoch, generation) that also
//! announces it on the channel. Every command has a deadline, so a paused Redis looks like an
//! unreachable one instead of hanging the keeper. The connection is opened lazily and dropped on
//! any error, so a restarted Redis is picked up by the next call.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Utc};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script};
use tokio::sync::Mutex;

use super::lease::{Lease, LeaseTiming};
use super::names::{Keys, NodeName};
use super::seal::FleetKey;
use crate::config::FleetConfig;
use crate::token::{Token, TokenSource};

/// Why a fleet operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Redis refused, dropped or never answered the connection or the command.
    #[error("Redis at {at} failed: {detail} (is it running, and are `redis_url` and its password right?)")]
    Redis {
        /// The redacted URL.
        at: String,
        /// What went wrong (never the password).
        detail: String,
    },
    /// This node does not hold the lease (any more).
    #[error("this keeper does not hold the fleet lease, so it may not publish a token")]
    NotHolder,
    /// The record is not at the generation the caller expected: someone published since.
    #[error("the shared token moved on (now generation {current}); re-read it before publishing")]
    Stale {
        /// The generation in Redis.
        current: u64,
    },
    /// The record in Redis is malformed or does not open with this `fleet_key`.
    #[error("the shared token record is unusable: {0}")]
    Record(String),
}

/// Which record a caller has seen: `epoch` changes when the record is created anew (Redis
/// restarted empty), `generation` counts publications within an epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordId {
    /// Random id of this record's lifetime in Redis.
    pub epoch: String,
    /// 1 for the first token published in the epoch, +1 for each one after.
    pub generation: u64,
}

/// The shared record's public part (no token): what `fleet status` and followers read first.
#[derive(Debug, Clone)]
pub struct SharedRecord {
    /// Which record this is.
    pub id: RecordId,
    /// The node that published it.
    pub holder: String,
    /// When the token stops working.
    pub expires_at: DateTime<FixedOffset>,
    /// When the token was obtained, if known.
    pub obtained_at: Option<DateTime<FixedOffset>>,
    /// How the token was obtained, if known.
    pub source: Option<TokenSource>,
    /// When it was published (the publisher's clock).
    pub published_at: Option<DateTime<FixedOffset>>,
    sealed: String,
}

#[cfg(test)]
impl SharedRecord {
    /// A record with placeholder fields, for table tests of pure decisions.
    pub(crate) fn for_test(holder: &str) -> Self {
        Self {
            id: RecordId { epoch: "e".into(), generation: 1 },
            holder: holder.into(),
            expires_at: DateTime::UNIX_EPOCH.fixed_offset(),
            obtained_at: None,
            source: None,
            published_at: None,
            sealed: String::new(),
        }
    }
}

/// A shared record opened with the fleet key.
#[derive(Debug, Clone)]
pub struct SharedToken {
    /// Which record it came from.
    pub id: RecordId,
    /// The node that published it.
    pub holder: String,
    /// The token.
    pub token: Token,
}

/// A node's role, as its heartbeat says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds the lease: may mint, polls the bot, sends alerts.
    Leader,
    /// Follows the shared record.
    Follower,
}

impl Role {
    /// `leader` or `follower`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
        }
    }
}

/// What a node says about itself in its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    /// The node.
    pub node: String,
    /// Its role when it wrote this.
    pub role: String,
    /// The generation of the record it last took.
    pub generation: Option<u64>,
    /// When it last read the record successfully.
    pub caught_up_at: Option<DateTime<FixedOffset>>,
    /// How long until this heartbeat expires (a node that stops writing disappears).
    pub expires_in: Option<Duration>,
}

/// Everything `fleet status` shows.
#[derive(Debug, Clone)]
pub struct FleetStatus {
    /// The lease's holder (`node#instance`) and how long Redis will keep it.
    pub lease: Option<(String, Duration)>,
    /// The shared record, if any.
    pub record: Option<SharedRecord>,
    /// Every node with a live heartbeat, by name.
    pub nodes: Vec<NodeReport>,
}

/// Compare-and-renew: extend only our own lease.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// Compare-and-release: delete only our own lease.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// Compare-and-set of the shared record on (lease holder, epoch, generation), then the event.
/// KEYS: lease, record. ARGV: holder id, expected epoch, expected generation (0 = no record),
/// new epoch, node, expires_at, obtained_at, source, sealed, published_at, channel.
/// Returns {0, new generation} | {1, 0} not the holder | {2, current generation} stale.
const PUBLISH: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {1, 0}
end
local epoch = redis.call('HGET', KEYS[2], 'epoch')
local gen = tonumber(redis.call('HGET', KEYS[2], 'generation') or '0')
if ARGV[3] == '0' then
  if epoch then return {2, gen} end
  epoch = ARGV[4]
  gen = 0
elseif epoch ~= ARGV[2] or gen ~= tonumber(ARGV[3]) then
  return {2, gen}
end
local new = gen + 1
redis.call('HSET', KEYS[2], 'epoch', epoch, 'generation', new, 'holder', ARGV[5], 'expires_at', ARGV[6],
  'obtained_at', ARGV[7], 'source', ARGV[8], 'sealed', ARGV[9], 'published_at', ARGV[10])
redis.call('PUBLISH', ARGV[11], cjson.encode({epoch = epoch, generation = new, holder = ARGV[5]}))
return {0, new}";

/// One client id's view of the fleet, from one node.
pub struct Fleet {
    client: redis::Client,
    at: String,
    password: Option<String>,
    conn: Mutex<Option<MultiplexedConnection>>,
    keys: Keys,
    client_id: String,
    node: NodeName,
    holder_id: String,
    key: FleetKey,
    timeout: Duration,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("at", &self.at)
            .field("client_id", &self.client_id)
            .field("node", &self.node)
            .finish()
    }
}

impl Fleet {
    /// The fleet for `client_id` as `cfg` describes it. Connects lazily; each command waits at
    /// most `timeout` (a second is plenty on a LAN; keep it well under the lease's margin).
    pub fn new(cfg: &FleetConfig, client_id: &str, timeout: Duration) -> Result<Self, FleetError> {
        let at = cfg.redis_url.redacted();
        let client = redis::Client::open(cfg.redis_url.expose())
            .map_err(|_| FleetError::Redis { at: at.clone(), detail: "the URL is not accepted".into() })?;
        let instance: String = (0..8).map(|_| format!("{:x}", fastrand::u8(..16))).collect();
        Ok(Self {
            client,
            password: cfg.redis_url.url().password().map(str::to_string),
            at,
            conn: Mutex::new(None),
            keys: Keys::new(client_id),
            client_id: client_id.to_string(),
            holder_id: format!("{}#{instance}", cfg.node_name),
            node: cfg.node_name.clone(),
            key: cfg.fleet_key.clone(),
            timeout,
        })
    }

    /// This node's name.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// This process's lease value, `node#instance`: two processes given the same `node_name`
    /// still never both hold the lease.
    pub fn holder_id(&self) -> &str {
        &self.holder_id
    }

    /// Where Redis is, without credentials.
    pub fn redis_at(&self) -> &str {
        &self.at
    }

    /// The per-command deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    pub(crate) fn events_channel(&self) -> String {
        self.keys.events()
    }

    /// A Redis failure as a [`FleetError`], with the password scrubbed should it ever appear.
    pub(crate) fn fail(&self, detail: impl std::fmt::Display) -> FleetError {
        let mut detail = detail.to_string();
        if let Some(p) = self.password.as_deref().filter(|p| !p.is_empty()) {
            detail = detail.replace(p, "[redacted]");
        }
        FleetError::Redis { at: self.at.clone(), detail }
    }

    async fn conn(&self) -> Result<MultiplexedConnection, FleetError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let opened =
            tokio::time::timeout(self.timeout, self.client.get_multiplexed_async_connection_with_config(&config))
                .await
                .map_err(|_| self.fail(format!("no connection within {:?}", self.timeout)))?
                .map_err(|e| self.fail(e))?;
        *slot = Some(opened.clone());
        Ok(opened)
    }

    /// Runs one command (or script) with the deadline; any failure drops the connection so the
    /// next call reconnects (a restarted Redis leaves the old one dead).
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, FleetError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn().await?;
        let result = match tokio::time::timeout(self.timeout, f(conn)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => self.fail(e),
            Err(_) => self.fail(format!("no answer within {:?}", self.timeout)),
        };
        *self.conn.lock().await = None;
        Err(result)
    }

    /// Tries to take the lease (`SET lease holder NX PX ttl`). The instant is taken *before* the
    /// command is sent, so the returned lease never outlives Redis's. `None`: someone else holds
    /// it. A reply lost after Redis applied our `SET` is recovered by [`Fleet::renew`] on the
    /// next try, since the value is ours.
    pub async fn acquire(&self, timing: LeaseTiming) -> Result<Option<Lease>, FleetError> {
        let sent_at = Instant::now();
        let (key, holder, ttl) = (self.keys.lease(), self.holder_id.clone(), millis(timing.ttl));
        let set: Option<String> = self
            .run(|mut c| async move {
                redis::cmd("SET").arg(key).arg(holder).arg("NX").arg("PX").arg(ttl).query_async(&mut c).await
            })
            .await?;
        if set.is_some() {
            return Ok(Some(Lease::new(self.holder_id.clone(), sent_at, timing)));
        }
        self.renew_at(sent_at, timing).await
    }

    /// Renews a lease this node holds. `None`: it is no longer ours (lapsed and taken, or gone
    /// with a Redis restart); stop acting at once.
    pub async fn renew(&self, lease: &Lease) -> Result<Option<Lease>, FleetError> {
        self.renew_at(Instant::now(), lease.timing).await
    }

    async fn renew_at(&self, sent_at: Instant, timing: LeaseTiming) -> Result<Option<Lease>, FleetError> {
        let (key, holder, ttl) = (self.keys.lease(), self.holder_id.clone(), millis(timing.ttl));
        let renewed: i64 = self
            .run(|mut c| async move { Script::new(RENEW).key(key).arg(holder).arg(ttl).invoke_async(&mut c).await })
            .await?;
        Ok((renewed == 1).then(|| Lease::new(self.holder_id.clone(), sent_at, timing)))
    }

    /// Gives the lease up (on shutdown), so another keeper takes over without waiting for it
    /// to lapse. `false`: it was not ours any more.
    pub async fn release(&self, lease: Lease) -> Result<bool, FleetError> {
        let (key, holder) = (self.keys.lease(), lease.holder_id);
        let released: i64 = self
            .run(|mut c| async move { Script::new(RELEASE).key(key).arg(holder).invoke_async(&mut c).await })
            .await?;
        Ok(released == 1)
    }

    /// The lease's holder (`node#instance`) and Redis's time left on it.
    pub async fn lease_holder(&self) -> Result<Option<(String, Duration)>, FleetError> {
        let key = self.keys.lease();
        let (holder, pttl): (Option<String>, i64) =
            self.run(|mut c| async move { redis::pipe().get(&key).pttl(&key).query_async(&mut c).await }).await?;
        Ok(holder.map(|h| (h, Duration::from_millis(u64::try_from(pttl).unwrap_or(0)))))
    }

    /// Reads the shared record without opening the token.
    pub async fn read(&self) -> Result<Option<SharedRecord>, FleetError> {
        let key = self.keys.token();
        let fields: HashMap<String, String> =
            self.run(|mut c| async move { redis::cmd("HGETALL").arg(key).query_async(&mut c).await }).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        parse_record(&fields).map(Some).map_err(FleetError::Record)
    }

    /// Opens a record's token with the fleet key.
    pub fn open(&self, record: &SharedRecord) -> Result<SharedToken, FleetError> {
        let access_token = self
            .key
            .open(&record.sealed, &self.client_id, &record.id.epoch, record.id.generation)
            .map_err(FleetError::Record)?;
        Ok(SharedToken {
            id: record.id.clone(),
            holder: record.holder.clone(),
            token: Token {
                access_token,
                expires_at: record.expires_at,
                client_id: Some(self.client_id.clone()),
                obtained_at: record.obtained_at,
                source: record.source,
            },
        })
    }

    /// Publishes `token` as the next generation after `expected` (`None`: there is no record,
    /// as after Redis restarted empty), if `lease` is still ours and the record has not moved.
    /// The event on the channel carries the epoch, generation and node, never the token.
    /// `now` is the publisher's clock, recorded for `fleet status`.
    pub async fn publish(
        &self,
        lease: &Lease,
        expected: Option<&RecordId>,
        token: &Token,
        now: DateTime<Utc>,
    ) -> Result<RecordId, FleetError> {
        if !lease.may_act(Instant::now()) || lease.holder_id != self.holder_id {
            return Err(FleetError::NotHolder);
        }
        let (epoch, generation) = match expected {
            Some(id) => (id.epoch.clone(), id.generation + 1),
            None => ((0..16).map(|_| format!("{:x}", fastrand::u8(..16))).collect(), 1),
        };
        let sealed =
            self.key.seal(&token.access_token, &self.client_id, &epoch, generation).map_err(FleetError::Record)?;
        let args = [
            self.holder_id.clone(),
            expected.map(|id| id.epoch.clone()).unwrap_or_default(),
            expected.map_or(0, |id| id.generation).to_string(),
            epoch.clone(),
            self.node.to_string(),
            token.expires_at.to_rfc3339(),
            token.obtained_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            token.source.map(|s| s.as_str().to_string()).unwrap_or_default(),
            sealed,
            crate::ist::to_ist(&now).to_rfc3339(),
            self.keys.events(),
        ];
        let (lease_key, record_key) = (self.keys.lease(), self.keys.token());
        let (code, value): (i64, u64) = self
            .run(|mut c| async move {
                let script = Script::new(PUBLISH);
                let mut call = script.key(lease_key);
                call.key(record_key);
                for a in &args {
                    call.arg(a);
                }
                call.invoke_async(&mut c).await
            })
            .await?;
        match code {
            0 if value == generation => Ok(RecordId { epoch, generation: value }),
            0 => Err(FleetError::Record(format!("published as generation {value}, expected {generation}"))),
            1 => Err(FleetError::NotHolder),
            _ => Err(FleetError::Stale { current: value }),
        }
    }

    /// Writes this node's heartbeat (expires after `ttl` unless written again).
    pub async fn heartbeat(
        &self,
        role: Role,
        seen: Option<&RecordId>,
        caught_up_at: Option<DateTime<Utc>>,
        ttl: Duration,
    ) -> Result<(), FleetError> {
        let key = self.keys.node(&self.node);
        let fields = [
            ("role", role.as_str().to_string()),
            ("holder_id", self.holder_id.clone()),
            ("generation", seen.map(|s| s.generation.to_string()).unwrap_or_default()),
            ("epoch", seen.map(|s| s.epoch.clone()).unwrap_or_default()),
            ("caught_up_at", caught_up_at.map(|t| crate::ist::to_ist(&t).to_rfc3339()).unwrap_or_default()),
        ];
        let ttl = millis(ttl);
        self.run(|mut c| async move {
            redis::pipe()
                .atomic()
                .hset_multiple(&key, &fields)
                .ignore()
                .pexpire(&key, ttl)
                .ignore()
                .query_async(&mut c)
                .await
        })
        .await
    }

    /// Every node with a live heartbeat, sorted by name.
    pub async fn nodes(&self) -> Result<Vec<NodeReport>, FleetError> {
        let pattern = self.keys.node_pattern();
        let mut cursor = 0u64;
        let mut keys = Vec::new();
        loop {
            let p = pattern.clone();
            let (next, batch): (u64, Vec<String>) = self
                .run(|mut c| async move {
                    redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(p).arg("COUNT").arg(100).query_async(&mut c).await
                })
                .await?;
            keys.extend(batch);
            if next == 0 || keys.len() > 10_000 {
                break;
            }
            cursor = next;
        }
        let prefix_len = pattern.len() - 1;
        let mut nodes = Vec::new();
        for key in keys {
            let k = key.clone();
            let (fields, pttl): (HashMap<String, String>, i64) =
                self.run(|mut c| async move { redis::pipe().hgetall(&k).pttl(&k).query_async(&mut c).await }).await?;
            if fields.is_empty() {
                continue;
            }
            nodes.push(NodeReport {
                node: key.get(prefix_len..).unwrap_or_default().to_string(),
                role: fields.get("role").cloned().unwrap_or_default(),
                generation: fields.get("generation").and_then(|g| g.parse().ok()),
                caught_up_at: fields.get("caught_up_at").and_then(|t| DateTime::parse_from_rfc3339(t).ok()),
                expires_in: u64::try_from(pttl).ok().map(Duration::from_millis),
            });
        }
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(nodes)
    }

    /// The lease, the record and the nodes, for `fleet status`.
    pub async fn status(&self) -> Result<FleetStatus, FleetError> {
        Ok(FleetStatus { lease: self.lease_holder().await?, record: self.read().await?, nodes: self.nodes().await? })
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// The record's fields, checked.
fn parse_record(f: &HashMap<String, String>) -> Result<SharedRecord, String> {
    let get = |k: &str| f.get(k).filter(|v| !v.is_empty()).ok_or_else(|| format!("the field `{k}` is missing"));
    let time = |k: &str| f.get(k).filter(|v| !v.is_empty()).and_then(|v| DateTime::parse_from_rfc3339(v).ok());
    let generation =
        get("generation")?.parse::<u64>().map_err(|_| "the field `generation` is not a number".to_string())?;
    let expires_at = DateTime::parse_from_rfc3339(get("expires_at")?)
        .map_err(|_| "the field `expires_at` is not an RFC 3339 time".to_string())?;
    let source = f.get("source").and_then(|s| match s.as_str() {
        "totp" => Some(TokenSource::Totp),
        "consent" => Some(TokenSource::Consent),
        "renew" => Some(TokenSource::Renew),
        "manual" => Some(TokenSource::Manual),
        _ => None,
    });
    Ok(SharedRecord {
        id: RecordId { epoch: get("epoch")?.clone(), generation },
        holder: get("holder")?.clone(),
        expires_at,
        obtained_at: time("obtained_at"),
        source,
        published_at: time("published_at"),
        sealed: get("sealed")?.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_with_a_missing_or_bad_field_is_refused_by_name() {
        let good: HashMap<String, String> = [
            ("epoch", "e1"),
            ("generation", "3"),
            ("holder", "box-1"),
            ("expires_at", "2026-12-01T09:00:00+05:30"),
            ("obtained_at", ""),
            ("source", "totp"),
            ("sealed", "AAAA"),
            ("published_at", "2026-11-30T09:00:00+05:30"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let r = parse_record(&good).expect("good");
        assert_eq!(r.id, RecordId { epoch: "e1".into(), generation: 3 });
        assert_eq!(r.source, Some(TokenSource::Totp));
        assert!(r.obtained_at.is_none() && r.published_at.is_some());
        for (field, bad, want) in [
            ("generation", "x", "`generation`"),
            ("expires_at", "tomorrow", "`expires_at`"),
            ("sealed", "", "`sealed`"),
            ("epoch", "", "`epoch`"),
        ] {
            let mut f = good.clone();
            f.insert(field.into(), bad.into());
            assert!(parse_record(&f).expect_err(field).contains(want), "{field}");
        }
    }
}
