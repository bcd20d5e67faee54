//! Following the shared record: pub/sub for speed, a periodic re-read for certainty.
//!
//! Redis pub/sub is fire-and-forget: a subscriber that was disconnected (Redis restarted, a
//! network blip) never sees what was published meanwhile. So the follower treats an event only
//! as a hint to read the record now, and also reads it every `reread_every` and after every
//! (re)connection. Whatever it reads, it hands over only when it is news ([`is_news`]); the
//! keeper then decides whether to adopt it ([`should_adopt`]). It also writes this node's
//! heartbeat after each read, which is what `fleet status` shows as "caught up".

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::campaign::LeaseHandle;
#[cfg(test)]
use super::record::SharedRecord;
use super::record::{RecordId, SharedToken};
use super::store::Fleet;
use crate::clock::SharedClock;
use crate::token::Token;

/// Whether a record is news to a node that last took `seen`: a first record, a record of a new
/// epoch (Redis restarted empty and someone published again; its generation starts over), or a
/// later generation of the same epoch. Pure.
pub fn is_news(seen: Option<&RecordId>, record: &RecordId) -> bool {
    match seen {
        None => true,
        Some(s) => s.epoch != record.epoch || record.generation > s.generation,
    }
}

/// Whether a keeper holding `local` should switch to `shared`. Each mint kills the token before
/// it, so of two different tokens the later-expiring one is the live one: adopt a token that
/// expires later (or any token when there is none), never an older one a stale record still
/// carries after a Redis restart. Pure.
pub fn should_adopt(local: Option<&Token>, shared: &Token) -> bool {
    match local {
        None => true,
        Some(l) => shared.expires_at > l.expires_at && l.access_token != shared.access_token,
    }
}

/// Whether two successive records look like two mints by two nodes inside one mint window
/// (`window`: Dhan's, i.e. `mint_cooldown`), which the lease should have made impossible: a
/// paused leader outliving its lease, or a manual override. Then the keeper keeps whichever
/// token `/v2/profile` accepts and tells the admin. A re-seed after a Redis restart republishes
/// the same token (same expiry) and is not a second mint. Pure; the keeper asks it of opened
/// records ([`double_mint_between`]), the tests of raw ones.
#[cfg(test)]
fn double_mint_suspected(prev: &SharedRecord, next: &SharedRecord, window: Duration) -> bool {
    two_mints(
        (&prev.holder, prev.obtained_at, prev.expires_at),
        (&next.holder, next.obtained_at, next.expires_at),
        window,
    )
}

/// Whether two successive shared tokens look like two mints by two nodes inside one mint
/// window (`mint_cooldown`), which the lease should have made impossible: a paused leader
/// outliving its lease, or a manual override. A re-seed after a Redis restart republishes the
/// same token (same expiry) and is not a second mint. Pure.
pub fn double_mint_between(prev: &SharedToken, next: &SharedToken, window: Duration) -> bool {
    two_mints(
        (&prev.holder, prev.token.obtained_at, prev.token.expires_at),
        (&next.holder, next.token.obtained_at, next.token.expires_at),
        window,
    )
}

type MintFacts<'a> = (&'a str, Option<DateTime<FixedOffset>>, DateTime<FixedOffset>);

fn two_mints(
    (holder_a, obtained_a, expires_a): MintFacts<'_>,
    (holder_b, obtained_b, expires_b): MintFacts<'_>,
    window: Duration,
) -> bool {
    let (Some(a), Some(b)) = (obtained_a, obtained_b) else {
        return false;
    };
    let apart = (b - a).abs().to_std().unwrap_or(Duration::MAX);
    holder_a != holder_b && expires_a != expires_b && apart < window
}

/// The delay before reconnect attempt `attempt` (0-based): 100 ms doubling, capped. Pure.
pub(crate) fn backoff(attempt: u32, cap: Duration) -> Duration {
    Duration::from_millis(100).saturating_mul(1u32 << attempt.min(16)).min(cap)
}

/// How a follower runs.
#[derive(Debug, Clone, Copy)]
pub struct FollowOptions {
    /// How often the record is re-read regardless of events (and the heartbeat written).
    pub reread_every: Duration,
    /// How long a heartbeat lives; a node that stops writing disappears from `fleet status`.
    pub heartbeat_ttl: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        Self { reread_every: Duration::from_secs(5), heartbeat_ttl: Duration::from_secs(30) }
    }
}

/// Follows the shared record until `shutdown`, calling `on_new` with each record that is news
/// after `seen`. Survives Redis going away: it reconnects with backoff and re-reads on return.
/// `lease` tells the heartbeat this node's role.
pub async fn follow<F>(
    fleet: Arc<Fleet>,
    clock: SharedClock,
    options: FollowOptions,
    lease: LeaseHandle,
    mut seen: Option<RecordId>,
    shutdown: CancellationToken,
    mut on_new: F,
) where
    F: FnMut(SharedToken) + Send,
{
    let mut attempt = 0u32;
    let mut follower = Catchup { fleet: &fleet, clock: &clock, options, lease: &lease, unopenable: None };
    while !shutdown.is_cancelled() {
        let mut events = match subscribe(&fleet).await {
            Ok(stream) => {
                attempt = 0;
                Some(stream)
            }
            Err(e) => {
                tracing::debug!("fleet events: {e}");
                None
            }
        };
        follower.catch_up(&mut seen, &mut on_new).await;
        // With events: listen until the subscription drops. Without: one re-read period, then
        // try to subscribe again.
        loop {
            let tick = tokio::time::sleep(options.reread_every);
            tokio::select! {
                () = shutdown.cancelled() => return,
                message = next_event(&mut events) => {
                    if message.is_none() {
                        tracing::debug!("fleet events: the subscription dropped; reconnecting");
                        break;
                    }
                    follower.catch_up(&mut seen, &mut on_new).await;
                }
                () = tick => {
                    follower.catch_up(&mut seen, &mut on_new).await;
                    if events.is_none() {
                        break;
                    }
                }
            }
        }
        let pause = backoff(attempt, options.reread_every);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// The next event, or `None` once the subscription has dropped; pending forever without one.
async fn next_event(events: &mut Option<redis::aio::PubSubStream>) -> Option<redis::Msg> {
    match events {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

async fn subscribe(fleet: &Fleet) -> Result<redis::aio::PubSubStream, String> {
    let limit = fleet.timeout();
    let connect = async {
        let mut pubsub = fleet.client().get_async_pubsub().await?;
        pubsub.subscribe(fleet.events_channel()).await?;
        Ok::<_, redis::RedisError>(pubsub.into_on_message())
    };
    match tokio::time::timeout(limit, connect).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(fleet.fail(e).to_string()),
        Err(_) => Err(fleet.fail(format!("no subscription within {limit:?}")).to_string()),
    }
}

struct Catchup<'a> {
    fleet: &'a Fleet,
    clock: &'a SharedClock,
    options: FollowOptions,
    lease: &'a LeaseHandle,
    /// The last record that did not open, so its warning is logged once.
    unopenable: Option<RecordId>,
}

impl Catchup<'_> {
    async fn catch_up<F: FnMut(SharedToken)>(&mut self, seen: &mut Option<RecordId>, on_new: &mut F) {
        let record = match self.fleet.read().await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("fleet: cannot read the shared token: {e}");
                return;
            }
        };
        if let Some(record) = record.filter(|r| is_news(seen.as_ref(), &r.id)) {
            match self.fleet.open(&record) {
                Ok(shared) => {
                    *seen = Some(shared.id.clone());
                    on_new(shared);
                }
                Err(e) if self.unopenable.as_ref() != Some(&record.id) => {
                    tracing::warn!(generation = record.id.generation, holder = %record.holder, "fleet: {e}");
                    self.unopenable = Some(record.id.clone());
                }
                Err(_) => {}
            }
        }
        let role = self.lease.role(Instant::now());
        let now = self.clock.now();
        if let Err(e) = self.fleet.heartbeat(role, seen.as_ref(), Some(now), self.options.heartbeat_ttl).await {
            tracing::debug!("fleet heartbeat: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::secret::Secret;

    fn id(epoch: &str, generation: u64) -> RecordId {
        RecordId { epoch: epoch.into(), generation }
    }

    #[test]
    fn news_is_a_later_generation_or_a_new_epoch() {
        let table = [
            (None, id("a", 1), true),
            (Some(id("a", 1)), id("a", 2), true),
            (Some(id("a", 2)), id("a", 2), false),
            (Some(id("a", 3)), id("a", 2), false),
            (Some(id("a", 9)), id("b", 1), true),
        ];
        for (seen, rec, want) in table {
            assert_eq!(is_news(seen.as_ref(), &rec), want, "{seen:?} -> {rec:?}");
        }
    }

    #[test]
    fn only_a_later_expiring_different_token_is_adopted() {
        let tok = |t: &str, hour: u32| Token {
            access_token: Secret::new(t),
            expires_at: crate::ist::offset().with_ymd_and_hms(2026, 12, 1, hour, 0, 0).single().expect("time"),
            client_id: None,
            obtained_at: None,
            source: None,
        };
        let table = [
            (None, tok("b", 9), true),
            (Some(tok("a", 9)), tok("b", 10), true),
            (Some(tok("a", 10)), tok("b", 9), false),
            (Some(tok("a", 9)), tok("a", 9), false),
            (Some(tok("a", 9)), tok("b", 9), false),
        ];
        for (local, shared, want) in table {
            assert_eq!(should_adopt(local.as_ref(), &shared), want, "{local:?} -> {shared:?}");
        }
    }

    #[test]
    fn two_nodes_minting_inside_one_window_is_suspected() {
        let t = |min: i64| {
            Some(
                crate::ist::offset().with_ymd_and_hms(2026, 12, 1, 8, 0, 0).single().expect("t")
                    + chrono::Duration::minutes(min),
            )
        };
        let rec = |holder: &str, obtained: i64, expires_h: i64| {
            let mut r = SharedRecord::for_test(holder);
            r.obtained_at = t(obtained);
            r.expires_at = t(expires_h * 60).expect("t");
            r
        };
        let window = Duration::from_secs(125);
        // (previous, next, suspected)
        let table = [
            (rec("a", 0, 24), rec("b", 1, 25), true),
            (rec("a", 0, 24), rec("a", 1, 25), false),
            (rec("a", 0, 24), rec("b", 3, 25), false),
            (rec("a", 0, 24), rec("b", 0, 24), false),
            (rec("a", 1, 24), rec("b", 0, 25), true),
        ];
        for (prev, next, want) in table {
            assert_eq!(double_mint_suspected(&prev, &next, window), want, "{} -> {}", prev.holder, next.holder);
        }
        let mut unknown = rec("b", 1, 25);
        unknown.obtained_at = None;
        assert!(!double_mint_suspected(&rec("a", 0, 24), &unknown, window));
    }

    #[test]
    fn reconnects_back_off_up_to_the_reread_period() {
        let cap = Duration::from_secs(5);
        let got: Vec<u128> = (0..8).map(|a| backoff(a, cap).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(backoff(u32::MAX, cap), cap);
    }
}
