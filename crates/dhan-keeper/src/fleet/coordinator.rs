//! The [`Coordinator`]: the keeper's only question to the fleet, "may this node mint for its
//! client now?", and the two calls around a mint.
//!
//! It is the seam the architecture notes ask for: a single host has [`Coordinator::alone`],
//! which always says yes and publishes nothing, so the keeper's code has one path whether a
//! fleet exists or not. With a fleet it wraps the [`Fleet`], the [`LeaseHandle`] and the last
//! record this node has seen, and it turns the compare-and-set protocol (expected generation,
//! stale retries) into two calls: [`Coordinator::newer_shared`] before minting and
//! [`Coordinator::announce`] after accepting a token this node obtained.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::campaign::LeaseHandle;
use super::follow::should_adopt;
use super::record::{Offered, RecordId, SharedToken};
use super::store::{Fleet, FleetError};
use crate::token::Token;

/// Whether and how this keeper coordinates with others.
#[derive(Debug, Clone)]
pub struct Coordinator {
    inner: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    fleet: Arc<Fleet>,
    lease: LeaseHandle,
    seen: Mutex<Option<RecordId>>,
}

/// How many times [`Coordinator::announce`] re-reads after a stale generation before giving up.
const STALE_RETRIES: usize = 3;

impl Coordinator {
    /// A single host: it may always mint, and there is nothing to publish.
    pub fn alone() -> Self {
        Self { inner: None }
    }

    /// A member of a fleet, with its lease (a follower without credentials passes
    /// [`LeaseHandle::never`]).
    pub fn fleet(fleet: Arc<Fleet>, lease: LeaseHandle) -> Self {
        Self { inner: Some(Arc::new(Shared { fleet, lease, seen: Mutex::new(None) })) }
    }

    /// Whether this keeper is in a fleet (not [`Coordinator::alone`]).
    pub fn is_fleet(&self) -> bool {
        self.inner.is_some()
    }

    /// The fleet, when there is one.
    pub fn fleet_ref(&self) -> Option<&Arc<Fleet>> {
        self.inner.as_ref().map(|s| &s.fleet)
    }

    /// The lease handle, when in a fleet (a follower only has [`LeaseHandle::never`]).
    pub fn lease(&self) -> Option<&LeaseHandle> {
        self.inner.as_ref().map(|s| &s.lease)
    }

    /// Whether this node holds the lease and may act on it now. Alone: always.
    pub fn may_act(&self, now: Instant) -> bool {
        self.inner.as_ref().is_none_or(|s| s.lease.may_act(now))
    }

    /// Whether this node may start an action that takes up to `takes` (a mint: `dhan_timeout`)
    /// at `now`. Alone: always.
    pub fn may_mint(&self, now: Instant, takes: Duration) -> bool {
        self.inner.as_ref().is_none_or(|s| s.lease.may_start(now, takes))
    }

    /// Right before a request to Dhan that takes up to `takes`: proves, by a compare-and-renew
    /// in Redis now, that this node still holds the lease, and that the renewed lease has room
    /// for the whole request. A lease held only by this node's memory (Redis restarted empty,
    /// failed over, or the lease passed while this node slept in a retry) is no licence: the
    /// renewal finds another holder or none, and the answer is `false`. Alone: `true`.
    pub async fn confirm(&self, takes: Duration) -> Result<bool, FleetError> {
        let Some(s) = &self.inner else {
            return Ok(true);
        };
        let Some(held) = s.lease.current(Instant::now()) else {
            return Ok(false);
        };
        Ok(s.fleet.renew(&held).await?.is_some_and(|fresh| fresh.may_start(Instant::now(), takes)))
    }

    /// Whether this node polls the Telegram bot and sends alerts. Alone: always.
    pub fn keeps_the_bot(&self, now: Instant) -> bool {
        self.inner.as_ref().is_none_or(|s| s.lease.keeps_the_bot(now))
    }

    /// Notes a record this node took (from the follower), so the next publish expects it.
    pub fn saw(&self, id: &RecordId) {
        if let Some(s) = &self.inner {
            let mut seen = s.seen.lock().unwrap_or_else(|e| e.into_inner());
            if super::follow::is_news(seen.as_ref(), id) {
                *seen = Some(id.clone());
            }
        }
    }

    /// The last record this node took or published.
    pub fn seen(&self) -> Option<RecordId> {
        self.inner.as_ref().and_then(|s| s.seen.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Before minting: re-reads the shared record and returns its token when it should replace
    /// `local` (another keeper already rotated); the keeper then adopts it instead of minting.
    /// Alone: `None`.
    pub async fn newer_shared(&self, local: Option<&Token>) -> Result<Option<SharedToken>, FleetError> {
        let Some(s) = &self.inner else {
            return Ok(None);
        };
        let Some(record) = s.fleet.read().await? else {
            return Ok(None);
        };
        let shared = s.fleet.open(&record)?;
        self.saw(&shared.id);
        Ok(should_adopt(local, &shared.token).then_some(shared))
    }

    /// A token this node obtained without holding the lease (a paste, a consent login, an
    /// override): offered to the record, which takes it only if it expires later than the
    /// record's (Dhan's newest token is the live one). `Ok(true)`: nothing left to do (the record
    /// holds it, or a token expiring as late or later). `Ok(false)`: there is no record yet, so
    /// it stays pending for the leader. Alone: `Ok(true)`.
    pub async fn offer(&self, token: &Token, now: DateTime<Utc>) -> Result<bool, FleetError> {
        let Some(s) = &self.inner else {
            return Ok(true);
        };
        let mut last = FleetError::Stale { current: 0 };
        for _ in 0..=STALE_RETRIES {
            let expected = match self.seen() {
                Some(id) => id,
                None => match s.fleet.read().await? {
                    Some(r) => r.id,
                    None => return Ok(false),
                },
            };
            match s.fleet.offer(&expected, token, now).await {
                Ok(Offered::Taken(id)) => {
                    self.saw(&id);
                    return Ok(true);
                }
                Ok(Offered::NotLater) => return Ok(true),
                Ok(Offered::NoRecord) => return Ok(false),
                Err(FleetError::Stale { current }) => {
                    let record = s.fleet.read().await?;
                    *s.seen.lock().unwrap_or_else(|e| e.into_inner()) = record.map(|r| r.id);
                    last = FleetError::Stale { current };
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// After accepting a token this node obtained (minted, consent, pasted): publishes it as the
    /// next generation. On a stale generation it re-reads and tries again on the new one, unless
    /// the record now holds a token that should replace this one (then `Stale`: the keeper adopts
    /// that instead). `NotHolder` when the lease is not this node's. Alone: `Ok(None)`.
    pub async fn announce(&self, token: &Token, now: DateTime<Utc>) -> Result<Option<RecordId>, FleetError> {
        let Some(s) = &self.inner else {
            return Ok(None);
        };
        let lease = s.lease.current(Instant::now()).ok_or(FleetError::NotHolder)?;
        let mut last = FleetError::NotHolder;
        for _ in 0..STALE_RETRIES {
            let expected = self.seen();
            match s.fleet.publish(&lease, expected.as_ref(), token, now).await {
                Ok(id) => {
                    self.saw(&id);
                    return Ok(Some(id));
                }
                Err(FleetError::Stale { current }) => {
                    let record = s.fleet.read().await?;
                    *s.seen.lock().unwrap_or_else(|e| e.into_inner()) = record.as_ref().map(|r| r.id.clone());
                    if let Some(r) = &record {
                        let shared = s.fleet.open(r)?;
                        if should_adopt(Some(token), &shared.token) {
                            return Err(FleetError::Stale { current });
                        }
                    }
                    last = FleetError::Stale { current };
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}
