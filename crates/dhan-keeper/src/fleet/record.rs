//! The shared record: which token the fleet uses now, sealed, and how it changes.
//!
//! A hash per client id holds the epoch, generation, publishing node, expiry, source and the
//! sealed token. It changes only through one Lua compare-and-set on (lease holder, epoch,
//! generation), which also announces the new generation on the channel, so two keepers can never
//! both think they published the next generation, and no event ever carries the token.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, FixedOffset, Utc};
use redis::Script;

use super::lease::Lease;
use super::store::{Fleet, FleetError};
use crate::token::{Token, TokenSource};

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

/// Compare-and-set of the shared record on (lease holder, epoch, generation), then the event.
/// KEYS: lease, record. ARGV: holder id, expected epoch, expected generation (0 = no record),
/// new epoch, node, expires_at, obtained_at, source, sealed, published_at, channel,
/// expires_at as unix seconds.
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
  'obtained_at', ARGV[7], 'source', ARGV[8], 'sealed', ARGV[9], 'published_at', ARGV[10], 'expires_unix', ARGV[12])
redis.call('PUBLISH', ARGV[11], cjson.encode({epoch = epoch, generation = new, holder = ARGV[5]}))
return {0, new}";

/// An offer from a node that does not hold the lease: it obtained a token by itself (a paste, a
/// consent login, an admin's override) and Dhan's newest token is the live one, so the record
/// moves to it only if it expires later than the record's, on top of the generation the node
/// saw. KEYS: record. ARGV: expected epoch, expected generation, node, expires_at, obtained_at,
/// source, sealed, published_at, channel, expires_at as unix seconds.
/// Returns {0, new generation} | {2, current generation} stale | {3, 0} no record (the leader
/// seeds it) | {4, current generation} not later than the record's.
const OFFER: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {3, 0} end
local gen = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
if epoch ~= ARGV[1] or gen ~= tonumber(ARGV[2]) then return {2, gen} end
local cur = tonumber(redis.call('HGET', KEYS[1], 'expires_unix') or '0') or 0
if tonumber(ARGV[10]) <= cur then return {4, gen} end
local new = gen + 1
redis.call('HSET', KEYS[1], 'generation', new, 'holder', ARGV[3], 'expires_at', ARGV[4],
  'obtained_at', ARGV[5], 'source', ARGV[6], 'sealed', ARGV[7], 'published_at', ARGV[8], 'expires_unix', ARGV[10])
redis.call('PUBLISH', ARGV[9], cjson.encode({epoch = epoch, generation = new, holder = ARGV[3]}))
return {0, new}";

/// What became of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    /// The record holds the offered token now.
    Taken(RecordId),
    /// The record already holds a token that expires as late or later.
    NotLater,
    /// There is no record yet; the lease holder seeds it.
    NoRecord,
}

impl Fleet {
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
        // Only the token is authenticated; the expiry beside it in the hash is not, so a writer
        // to Redis could stretch it. The token's own `exp` claim wins when it has one.
        let expires_at = crate::dhan::jwt::decode(access_token.expose())
            .and_then(|c| c.expires_at())
            .map_or(record.expires_at, |exp| crate::ist::to_ist(&exp));
        Ok(SharedToken {
            id: record.id.clone(),
            holder: record.holder.clone(),
            token: Token {
                access_token,
                expires_at,
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
        let mut args = vec![
            self.holder_id.clone(),
            expected.map(|id| id.epoch.clone()).unwrap_or_default(),
            expected.map_or(0, |id| id.generation).to_string(),
            epoch.clone(),
        ];
        args.extend(self.record_fields(token, &epoch, generation, now)?);
        let (code, value) = self.invoke(PUBLISH, vec![self.keys.lease(), self.keys.token()], args).await?;
        match code {
            0 if value == generation => Ok(RecordId { epoch, generation: value }),
            0 => Err(FleetError::Record(format!("published as generation {value}, expected {generation}"))),
            1 => Err(FleetError::NotHolder),
            _ => Err(FleetError::Stale { current: value }),
        }
    }
}

impl Fleet {
    /// Offers `token`, which this node obtained without holding the lease, on top of
    /// `expected`: the record takes it only if it expires later than the record's token (a Lua
    /// compare-and-set). `Stale` when the record moved since `expected`.
    pub async fn offer(&self, expected: &RecordId, token: &Token, now: DateTime<Utc>) -> Result<Offered, FleetError> {
        let generation = expected.generation + 1;
        let mut args = vec![expected.epoch.clone(), expected.generation.to_string()];
        args.extend(self.record_fields(token, &expected.epoch, generation, now)?);
        let (code, value) = self.invoke(OFFER, vec![self.keys.token()], args).await?;
        match code {
            0 if value == generation => Ok(Offered::Taken(RecordId { epoch: expected.epoch.clone(), generation })),
            0 => Err(FleetError::Record(format!("offered as generation {value}, expected {generation}"))),
            3 => Ok(Offered::NoRecord),
            4 => Ok(Offered::NotLater),
            _ => Err(FleetError::Stale { current: value }),
        }
    }
}

impl Fleet {
    /// The record's fields as both scripts take them after their own arguments: node,
    /// expires_at, obtained_at, source, the sealed token, published_at, the channel, and
    /// expires_at as unix seconds.
    fn record_fields(
        &self,
        token: &Token,
        epoch: &str,
        generation: u64,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, FleetError> {
        let sealed =
            self.key.seal(&token.access_token, &self.client_id, epoch, generation).map_err(FleetError::Record)?;
        Ok(vec![
            self.node.to_string(),
            token.expires_at.to_rfc3339(),
            token.obtained_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            token.source.map(|s| s.as_str().to_string()).unwrap_or_default(),
            sealed,
            crate::ist::to_ist(&now).to_rfc3339(),
            self.keys.events(),
            token.expires_at.timestamp().to_string(),
        ])
    }

    /// Runs a script that answers `{code, value}`.
    async fn invoke(&self, source: &str, keys: Vec<String>, args: Vec<String>) -> Result<(i64, u64), FleetError> {
        let source = source.to_string();
        self.run(|mut c| async move {
            let script = Script::new(&source);
            let mut call = script.prepare_invoke();
            for k in &keys {
                call.key(k);
            }
            for a in &args {
                call.arg(a);
            }
            call.invoke_async(&mut c).await
        })
        .await
    }
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
