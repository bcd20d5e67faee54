//! The keeper's side of a fleet: the calls around a mint, taking in shared tokens, and
//! publishing the tokens this node obtains.
//!
//! The architecture notes ask that the planner never knows whether a fleet exists: it asks for a
//! rotation, and the keeper asks its [`Coordinator`] before calling Dhan (`fleet_gate`, one line at
//! the top of `rotate`). A token from the fleet is taken in through the same `take_in` as a
//! minted one (file, `/events`, `/token`, `on_refresh`), only without the Telegram confirmation
//! and without being published again. A token this node obtained is put in a one-slot "pending"
//! box that the announcer task publishes, so a publish that fails (Redis down, lease lapsed)
//! is retried until the record holds it or a later token. Each keeper (account) has its own
//! side, so several accounts get one lease and one record per client id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::{Keeper, RotateError, lock};
use crate::fleet::{self, Coordinator, FleetError, LeaseFacts, MintDecision, SharedToken, Waiting};
use crate::gate::Asker;
use crate::ist;
use crate::token::{Refused, Token, TokenSource};

/// How soon the loop asks again after the fleet said "not now" (a lease change wakes it sooner).
const NOT_NOW: Duration = Duration::from_secs(2);

/// Where a token came from, for `take_in`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// This node obtained it (mint, renewal, consent, paste): confirm it and publish it.
    Obtained,
    /// Another keeper published it: take it in quietly, never publish it again.
    Shared,
}

/// How the fleet lets a rotation go on.
#[derive(Debug, Clone)]
pub(crate) enum Pass {
    /// No fleet.
    Alone,
    /// The lease holder: each request to Dhan is preceded by a lease confirmation.
    Leader,
    /// An admin's override while Redis is unreachable: mint once without the lease.
    Override,
    /// Another keeper already rotated; its token was taken in instead.
    Adopted(Token),
}

/// The keeper's fleet state. Empty (and unused) without `redis_url`.
#[derive(Debug, Default)]
pub(crate) struct FleetSide {
    coordinator: OnceLock<Coordinator>,
    /// A token this node obtained that the shared record does not hold yet.
    pending: Mutex<Option<Token>>,
    pub(super) pending_changed: Notify,
    /// The last shared token handed over by the follower (for the double-mint check).
    last_shared: Mutex<Option<SharedToken>>,
    pub(super) seen: Mutex<Seen>,
    pub(super) double_mints: AtomicU64,
}

/// What this node last learnt from Redis, for `/status` and `/metrics`.
#[derive(Debug, Clone, Default)]
pub(super) struct Seen {
    /// The lease holder's node name, as Redis said last.
    pub(super) holder: Option<String>,
    /// Redis did not answer since then.
    pub(super) unreachable_since: Option<DateTime<Utc>>,
    /// "Rotation is held" went to the admin during this outage.
    held_notice_sent: bool,
}

impl Keeper {
    /// Sets the coordinator (the default is [`Coordinator::alone`]) once, before the loops start;
    /// `false` if one was set already.
    pub fn set_coordinator(&self, coordinator: Coordinator) -> bool {
        self.fleet.coordinator.set(coordinator).is_ok()
    }

    /// The coordinator this keeper asks before it mints.
    pub fn coordinator(&self) -> Coordinator {
        self.fleet.coordinator.get().cloned().unwrap_or_else(Coordinator::alone)
    }

    /// Whether this node polls the bot and sends alerts: alone always; in a fleet the leader, and
    /// the last leader while Redis is unreachable.
    pub fn keeps_the_bot(&self) -> bool {
        self.coordinator().keeps_the_bot(Instant::now())
    }

    fn lease_facts(&self, now: Instant) -> LeaseFacts {
        let c = self.coordinator();
        LeaseFacts {
            fleet: c.is_fleet(),
            follower_only: !self.cfg.has_credentials(),
            may_start: c.may_mint(now, self.cfg.dhan_timeout),
            may_act: c.may_act(now),
            last_holder: c.lease().is_some_and(|l| l.keeps_the_bot(now)),
        }
    }

    /// Asked under `work` right before each request to Dhan that could mint (a renewal, a mint,
    /// the mint's retry in the next TOTP window): in a fleet, the lease is confirmed in Redis
    /// and must have room for the whole request, since the gate's first answer may be many
    /// seconds old by then. An admin's override (Redis unreachable) is not asked again.
    pub(super) async fn still_leading(&self, pass: Pass) -> Result<(), RotateError> {
        if !matches!(pass, Pass::Leader) {
            return Ok(());
        }
        let not_now = |waiting| RotateError::NotLeader { waiting, retry_at: self.clock.now() + super::chrono(NOT_NOW) };
        match self.coordinator().confirm(self.cfg.dhan_timeout).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::warn!(
                    "the fleet lease is not confirmed in Redis (taken over, lost, or too short): not minting"
                );
                Err(not_now(Waiting::Follower))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot confirm the fleet lease before calling Dhan; not minting now");
                Err(not_now(Waiting::RedisUnreachable))
            }
        }
    }

    /// Asked under `work` before any renewal or mint. `Ok(Gate::Adopted(token))`: another keeper
    /// already rotated, and its token was taken in instead. `Err(NotLeader)`: not this node's
    /// turn. Otherwise how this node may go on.
    pub(super) async fn fleet_gate(&self, asker: Asker) -> Result<Pass, RotateError> {
        let c = self.coordinator();
        if !c.is_fleet() {
            return Ok(Pass::Alone);
        }
        let not_now = |waiting| RotateError::NotLeader { waiting, retry_at: self.clock.now() + super::chrono(NOT_NOW) };
        match fleet::before_mint(self.lease_facts(Instant::now()), asker) {
            MintDecision::Mint => {}
            MintDecision::Override => {
                tracing::warn!("Redis is unreachable: minting without the fleet lease because the admin asked");
                self.alert(
                    "🛠 Redis is unreachable, so this keeper mints <b>without the fleet lease</b>, as you asked. The \
                     other hosts get the new token when Redis is back."
                        .into(),
                    vec![],
                );
                return Ok(Pass::Override);
            }
            MintDecision::Wait(waiting) => {
                if waiting == Waiting::RedisUnreachable {
                    self.rotation_held_notice();
                }
                return Err(not_now(waiting));
            }
        }
        // The holder proves it still holds the lease before reading the record: a lease that
        // lives only in this node's memory must not lead to "no newer token, so mint".
        self.still_leading(Pass::Leader).await?;
        match c.newer_shared(self.token().as_ref()).await {
            Ok(None) => Ok(Pass::Leader),
            Ok(Some(shared)) => {
                tracing::info!(generation = shared.id.generation, holder = %shared.holder, "another keeper already rotated; taking its token instead of minting");
                let why = format!("shared by {} before a mint", shared.holder);
                self.adopt_locked(shared, &why).map(Pass::Adopted)
            }
            Err(e) => {
                // The lease is ours, but whether someone rotated meanwhile cannot be read: wait.
                tracing::warn!(error = %e, "cannot read the shared token before minting; trying again shortly");
                Err(not_now(Waiting::RedisUnreachable))
            }
        }
    }

    /// Once per outage, when a scheduled rotation is held because Redis is unreachable.
    fn rotation_held_notice(&self) {
        let now = self.clock.now();
        let since = {
            let mut seen = lock(&self.fleet.seen);
            if seen.held_notice_sent {
                return;
            }
            seen.held_notice_sent = true;
            *seen.unreachable_since.get_or_insert(now)
        };
        tracing::warn!("Redis is unreachable: automatic rotation is held (no keeper may mint without the lease)");
        let left = self.usable_token().map(|t| ist::human_duration(t.remaining(now))).unwrap_or_else(|| "none".into());
        self.alert(
            format!(
                "⚠️ Redis unreachable from this host since {}: automatic rotation is held (no keeper mints without \
                 the fleet lease). Token time left: {left}. If no host can reach Redis, /refresh force mints here \
                 anyway; if another host still can, it may lead and mint, and a second mint kills its token.",
                ist::to_ist(&since).format("%H:%M:%S IST")
            ),
            vec![crate::alerts::refresh_button(self.cfg.mode())],
        );
    }

    /// After `take_in` of a token this node obtained: publish it (the announcer task does, and
    /// retries until the record holds it or a later one).
    pub(super) fn fleet_obtained(&self, token: &Token) {
        if self.coordinator().is_fleet() {
            *lock(&self.fleet.pending) = Some(token.clone());
            self.fleet.pending_changed.notify_one();
        }
    }

    /// Takes in a shared token. Callers hold `work`.
    fn adopt_locked(&self, shared: SharedToken, why: &str) -> Result<Token, RotateError> {
        let now = self.clock.now();
        if shared.token.is_expired(now) {
            return Err(Refused::AlreadyExpired.into());
        }
        self.coordinator().saw(&shared.id);
        let source = shared.token.source.unwrap_or(TokenSource::Totp);
        Ok(self.take_in(shared.token, source, why, Origin::Shared))
    }

    /// The follower hands over a record that is news: take it in if it should replace ours, after
    /// the double-mint check.
    pub(crate) async fn adopt_shared(&self, shared: SharedToken) {
        self.coordinator().saw(&shared.id);
        let prev = lock(&self.fleet.last_shared).replace(shared.clone());
        if let Some(prev) = prev.filter(|p| fleet::double_mint_between(p, &shared, self.cfg.mint_cooldown)) {
            self.settle_double_mint(prev, shared).await;
            return;
        }
        let _guard = self.work.lock().await;
        if !fleet::should_adopt(self.token().as_ref(), &shared.token) {
            return;
        }
        let why = format!("shared by {}", shared.holder);
        match self.adopt_locked(shared, &why) {
            Ok(t) => tracing::info!(expires_at = %t.expires_at, "took in the fleet's new token"),
            Err(e) => tracing::info!(error = %e, "the fleet's token was not taken in"),
        }
    }

    /// Two tokens from two nodes inside one mint window: keep the one `/v2/profile` accepts and
    /// tell the admin.
    async fn settle_double_mint(&self, prev: SharedToken, next: SharedToken) {
        self.fleet.double_mints.fetch_add(1, Ordering::Relaxed);
        self.metrics.failure("double_mint");
        tracing::error!(first = %prev.holder, second = %next.holder, "two keepers minted inside one mint window (the lease is advisory); keeping the token Dhan accepts");
        // The later token is kept unless Dhan says it is dead *and* takes the earlier one: a
        // timeout or a 5xx is no verdict, and swapping a live token for a dead one is the worse
        // mistake.
        let next_rejected =
            matches!(self.dhan.profile(&next.token.access_token).await, Err(crate::dhan::DhanError::AuthFailed { .. }));
        let prev_live = next_rejected && self.dhan.profile(&prev.token.access_token).await.is_ok();
        let live = if prev_live { prev.clone() } else { next.clone() };
        let _guard = self.work.lock().await;
        let local = self.token();
        if local.as_ref().is_none_or(|l| l.access_token.expose() != live.token.access_token.expose()) {
            let why = format!("kept after a double mint ({} and {})", prev.holder, next.holder);
            if let Err(e) = self.adopt_locked(live.clone(), &why) {
                tracing::warn!(error = %e, "the token kept after a double mint could not be taken in");
            }
        }
        self.alert(
            format!(
                "⚠️ Two keepers minted within one mint window ({} and {}); one token killed the other. Kept the one \
                 Dhan accepts, from {} (expires {}).",
                prev.holder,
                next.holder,
                live.holder,
                ist::human(&live.token.expires_at)
            ),
            vec![],
        );
    }

    /// Publishes the pending token, if any. Run by the announcer task.
    pub(crate) async fn try_announce(&self) {
        let Some(token) = lock(&self.fleet.pending).clone() else { return };
        let c = self.coordinator();
        match c.announce(&token, self.clock.now()).await {
            Ok(id) => {
                self.clear_pending(&token);
                self.redis_answered();
                if let Some(id) = id {
                    tracing::info!(generation = id.generation, "published the new token to the fleet");
                }
            }
            Err(FleetError::Stale { current }) => {
                self.clear_pending(&token);
                tracing::warn!(
                    current,
                    "the fleet moved to a later token while this one waited to be published; taking that one"
                );
                if let Ok(Some(shared)) = c.newer_shared(self.token().as_ref()).await {
                    self.adopt_shared(shared).await;
                }
            }
            // Obtained without the lease (a paste, a consent login, an override, or the lease was
            // lost since): offered, and taken only if it expires later than the shared one.
            Err(FleetError::NotHolder) => match c.offer(&token, self.clock.now()).await {
                Ok(true) => {
                    self.clear_pending(&token);
                    self.redis_answered();
                    tracing::info!("offered the token this node obtained to the fleet");
                }
                Ok(false) => tracing::debug!("no shared record yet; the token waits for the lease holder"),
                Err(e @ FleetError::Redis { .. }) => {
                    self.redis_failed();
                    tracing::debug!(error = %e, "the new token waits to be offered");
                }
                Err(_) => self.drop_pending_if_superseded(&c, &token).await,
            },
            Err(e @ FleetError::Redis { .. }) => {
                self.redis_failed();
                tracing::debug!(error = %e, "the new token waits to be published");
            }
            Err(e @ FleetError::Record(_)) => tracing::warn!(error = %e, "the new token could not be published"),
        }
    }

    /// Not the holder: the token stays pending (it is live, minting killed the one before) until
    /// this node leads again or the record holds a later token.
    async fn drop_pending_if_superseded(&self, c: &Coordinator, token: &Token) {
        let Some(fleet) = c.fleet_ref() else { return };
        match fleet.read().await {
            Ok(Some(record)) if record.expires_at >= token.expires_at => {
                self.clear_pending(token);
                tracing::info!("the fleet holds a later token than the one waiting to be published; dropped it");
            }
            Ok(_) => tracing::debug!("the new token waits for this keeper to lead again before it is published"),
            Err(_) => self.redis_failed(),
        }
    }

    fn clear_pending(&self, token: &Token) {
        let mut pending = lock(&self.fleet.pending);
        if pending.as_ref().is_some_and(|p| p.access_token.expose() == token.access_token.expose()) {
            *pending = None;
        }
    }

    /// On taking the lease: take a newer shared token; re-seed the record from ours when it is
    /// missing (Redis restarted empty) or older; check the token in hand with Dhan before relying
    /// on it (a leader killed between its mint and its publish left the record with a dead token).
    pub(crate) async fn on_lease_taken(&self) {
        let c = self.coordinator();
        let Some(fleet) = c.fleet_ref() else { return };
        tracing::info!(node = %fleet.node(), "this keeper leads the fleet: it rotates, polls the bot and alerts");
        match c.newer_shared(self.token().as_ref()).await {
            Ok(Some(shared)) => self.adopt_shared(shared).await,
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "could not read the shared token on taking the lease"),
        }
        if let Some(tok) = self.usable_token() {
            let behind = match fleet.read().await {
                Ok(None) => true,
                Ok(Some(r)) => r.expires_at < tok.expires_at,
                Err(_) => false,
            };
            if behind && lock(&self.fleet.pending).is_none() {
                tracing::info!("the shared record is missing or older than this keeper's token; publishing it");
                self.fleet_obtained(&tok);
            }
        }
        self.set_live(|l| l.last_verify = None);
        self.wake();
    }

    /// Asks Redis who holds the lease, for `/status` (and notes whether Redis answers).
    pub(crate) async fn observe_fleet(&self) {
        let Some(fleet) = self.coordinator().fleet_ref().cloned() else { return };
        match fleet.lease_holder().await {
            Ok(holder) => {
                self.redis_answered();
                lock(&self.fleet.seen).holder =
                    holder.map(|(h, _)| h.split_once('#').map_or(h.as_str(), |(n, _)| n).to_string());
            }
            Err(_) => self.redis_failed(),
        }
    }

    fn redis_answered(&self) {
        let mut seen = lock(&self.fleet.seen);
        if seen.unreachable_since.take().is_some() {
            tracing::info!("Redis answers again");
        }
        seen.held_notice_sent = false;
    }

    fn redis_failed(&self) {
        let now = self.clock.now();
        lock(&self.fleet.seen).unreachable_since.get_or_insert(now);
    }
}
