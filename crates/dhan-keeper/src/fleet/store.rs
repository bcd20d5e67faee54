//! [`Fleet`]: one client id's connection to Redis, and the lease.
//!
//! Every decision that two keepers could race on is one atomic step in Redis: the lease is taken
//! with `SET NX PX`, renewed and released by Lua scripts that compare the holder first, and a new
//! token is published by a Lua compare-and-set on (lease holder, epoch, generation) that also
//! announces it on the channel. Every command has a deadline, so a paused Redis looks like an
//! unreachable one instead of hanging the keeper. The connection is opened lazily and dropped on
//! any error, so a restarted Redis is picked up by the next call.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script};
use tokio::sync::Mutex;

use super::lease::{Lease, LeaseTiming};
use super::names::{Keys, NodeName};
use super::seal::FleetKey;
use crate::config::FleetConfig;

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

/// One client id's view of the fleet, from one node.
pub struct Fleet {
    client: redis::Client,
    at: String,
    passwords: Vec<String>,
    conn: Mutex<Option<MultiplexedConnection>>,
    pub(super) keys: Keys,
    pub(super) client_id: String,
    pub(super) node: NodeName,
    pub(super) holder_id: String,
    pub(super) key: FleetKey,
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
            passwords: cfg.redis_url.password_forms(),
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
        for p in &self.passwords {
            detail = detail.replace(p.as_str(), "[redacted]");
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
    pub(super) async fn run<T, F, Fut>(&self, f: F) -> Result<T, FleetError>
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
}

pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}
