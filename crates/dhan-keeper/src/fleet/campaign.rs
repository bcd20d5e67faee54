//! The task that takes and keeps the lease, and the [`LeaseHandle`] the keeper asks before it
//! mints.
//!
//! Every keeper with credentials runs one: it tries `SET NX` every `renew_every` until it wins,
//! then renews on the same beat. The handle holds the last [`Lease`] and every question is
//! answered against the monotonic clock at the moment it is asked, so a renewal that hangs on a
//! paused Redis cannot stretch the lease: the answer turns to "no" on time even while this task
//! waits for a reply.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::lease::{Lease, LeaseTiming};
use super::nodes::Role;
use super::store::Fleet;

/// What the keeper asks before it mints, takes a consent token, polls the bot or alerts.
#[derive(Debug, Clone)]
pub struct LeaseHandle {
    rx: watch::Receiver<View>,
}

/// What the campaign last knew.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct View {
    lease: Option<Lease>,
    /// This node held the lease last and nobody is known to have taken it since: its lease ran
    /// out only because Redis could not be reached.
    last_holder: bool,
}

impl LeaseHandle {
    /// A handle that never holds the lease (a follower without credentials).
    pub fn never() -> Self {
        let (_tx, rx) = watch::channel(View::default());
        Self { rx }
    }

    /// The lease as of its last renewal, if this node holds one that has not run out.
    pub fn current(&self, now: Instant) -> Option<Lease> {
        self.rx.borrow().lease.clone().filter(|l| l.may_act(now))
    }

    /// Whether this node keeps the Telegram bot and the alerts: while it may act, and also
    /// after its lease ran out only because Redis was unreachable (nobody else can have taken
    /// it then, and Telegram refuses a second poller anyway). Never a licence to mint: see
    /// docs/fleet.md, "Rotation while Redis is unreachable".
    pub fn keeps_the_bot(&self, now: Instant) -> bool {
        self.may_act(now) || self.rx.borrow().last_holder
    }

    /// Whether this node may act (mint, poll the bot, alert) at `now`.
    pub fn may_act(&self, now: Instant) -> bool {
        self.current(now).is_some()
    }

    /// Whether an action taking up to `takes` may start at `now` and end inside the lease.
    pub fn may_start(&self, now: Instant, takes: Duration) -> bool {
        self.current(now).is_some_and(|l| l.may_start(now, takes))
    }

    /// Leader while the lease lets it act, else follower.
    pub fn role(&self, now: Instant) -> Role {
        if self.may_act(now) { Role::Leader } else { Role::Follower }
    }

    /// Waits until the lease changes hands (taken, renewed, lost); for tests and the keeper's
    /// loop. `false` once the campaign has stopped.
    pub async fn changed(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }
}

/// How long the campaign sleeps before its next try, from `now`. Pure.
/// - no lease: retry after `renew_every` (a dead leader is replaced within TTL + this);
/// - holding, last call fine: until the renewal is due;
/// - holding, last call failed: retry soon (a quarter beat) but never past the end of acting.
pub(crate) fn next_wait(lease: Option<&Lease>, now: Instant, timing: LeaseTiming, failed: bool) -> Duration {
    let Some(lease) = lease else {
        return timing.renew_every;
    };
    let until_end = lease.remaining(now);
    let wait = if failed {
        timing.renew_every / 4
    } else {
        (lease.sent_at + timing.renew_every).saturating_duration_since(now)
    };
    wait.min(until_end).max(Duration::from_millis(10))
}

/// Starts the campaign for this node. It releases the lease when `shutdown` fires, so another
/// keeper takes over at once.
pub fn spawn_campaign(
    fleet: Arc<Fleet>,
    timing: LeaseTiming,
    shutdown: CancellationToken,
) -> (LeaseHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(View::default());
    let task = tokio::spawn(async move {
        let mut lease: Option<Lease> = None;
        let mut last_holder = false;
        loop {
            if lease.as_ref().is_some_and(|l| !l.may_act(Instant::now())) {
                tracing::warn!(node = %fleet.node(), "fleet lease ran out without a renewal; no longer the leader");
                lease = None;
            }
            let failed = step(&fleet, timing, &mut lease, &mut last_holder).await;
            let view = View { lease: lease.clone(), last_holder };
            tx.send_if_modified(|cur| {
                let changed = *cur != view;
                *cur = view;
                changed
            });
            let wait = next_wait(lease.as_ref(), Instant::now(), timing, failed);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => break,
            }
        }
        tx.send_replace(View::default());
        release(&fleet, lease).await;
    });
    (LeaseHandle { rx }, task)
}

/// One round of the campaign: take the lease when none is held, renew it when due. `true` when
/// Redis could not be asked (the next round comes sooner).
async fn step(fleet: &Fleet, timing: LeaseTiming, lease: &mut Option<Lease>, last_holder: &mut bool) -> bool {
    match lease {
        None => match fleet.acquire(timing).await {
            Ok(got) => {
                if got.is_some() {
                    tracing::info!(node = %fleet.node(), "took the fleet lease: this keeper leads");
                }
                // Redis answered: whoever holds the lease now, it is known.
                *last_holder = got.is_some();
                *lease = got;
                false
            }
            Err(e) => {
                tracing::debug!("fleet lease: {e}");
                true
            }
        },
        Some(held) if held.renew_due(Instant::now()) => match fleet.renew(held).await {
            Ok(Some(renewed)) => {
                *last_holder = true;
                *lease = Some(renewed);
                false
            }
            Ok(None) => {
                tracing::warn!(node = %fleet.node(), "the fleet lease passed to another keeper");
                *last_holder = false;
                *lease = None;
                false
            }
            Err(e) => {
                tracing::warn!("could not renew the fleet lease: {e}");
                true
            }
        },
        Some(_) => false,
    }
}

/// Gives the lease back at shutdown, if it is still ours, so another keeper need not wait it out.
async fn release(fleet: &Fleet, lease: Option<Lease>) {
    if let Some(held) = lease.filter(|l| l.may_act(Instant::now())) {
        match fleet.release(held).await {
            Ok(_) => tracing::info!(node = %fleet.node(), "released the fleet lease"),
            Err(e) => tracing::warn!("could not release the fleet lease (it lapses by itself): {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_campaign_sleeps_until_the_next_useful_moment() {
        const MS: fn(u64) -> Duration = Duration::from_millis;
        let timing = LeaseTiming { ttl: MS(900), renew_every: MS(300), margin: MS(100) };
        let t0 = Instant::now();
        let lease = Lease::new("a#1".into(), t0, timing);
        // (lease held, ms after the lease was sent, last call failed, expected wait ms)
        let table = [
            (false, 0, false, 300),
            (false, 0, true, 300),
            (true, 0, false, 300),
            (true, 100, false, 200),
            (true, 400, false, 10),
            (true, 400, true, 75),
            (true, 750, true, 50),
            (true, 900, true, 10),
        ];
        for (held, at, failed, want) in table {
            let got = next_wait(held.then_some(&lease), t0 + MS(at), timing, failed);
            assert_eq!(got, MS(want), "held={held} at={at} failed={failed}");
        }
    }
}
