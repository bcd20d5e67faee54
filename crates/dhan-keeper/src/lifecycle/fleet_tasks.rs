//! The tasks that join a keeper to its fleet at start: the lease campaign (only with
//! credentials), the follower, the adopter that takes shared tokens in, the announcer that
//! publishes this node's own, and the watch on leadership. Also the Telegram gate: only the
//! node that keeps the bot polls it.
//!
//! They are started by one call from `app::start` ([`start_fleet`]) and end on `shutdown`; the
//! campaign then releases the lease so another keeper leads at once.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Keeper;
use crate::fleet::{self, Coordinator, Fleet, FleetError, FollowOptions, LeaseHandle, LeaseTiming, SharedToken};

/// How often the leadership watch and the announcer look again without being woken.
const TICK: Duration = Duration::from_secs(1);

/// Joins `keeper` to its fleet when `redis_url` is set (a no-op otherwise): sets its
/// coordinator and starts the fleet's tasks. Call it before the loop and the bot start.
///
/// `last` stops the lease campaign and the announcer. Cancel it only after the keeper is idle
/// (no mint in flight) at shutdown: the lease is released then, and not a moment before, so
/// nobody else may mint while this node's last request is still out, and a token that request
/// brought is published first.
pub fn start_fleet(
    keeper: &Arc<Keeper>,
    shutdown: &CancellationToken,
    last: &CancellationToken,
) -> Result<Vec<JoinHandle<()>>, FleetError> {
    let cfg = keeper.config();
    let Some(fc) = &cfg.fleet else { return Ok(vec![]) };
    let timing = LeaseTiming::new(fc.lease);
    // Each Redis command waits at most this: well under the lease's margin's worth of renewals.
    let op_timeout = (fc.lease / 6).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let fleet = Arc::new(Fleet::new(fc, &cfg.client_id, op_timeout)?);
    let mut tasks = Vec::new();
    let lease = if cfg.has_credentials() {
        let (lease, task) = fleet::spawn_campaign(Arc::clone(&fleet), timing, last.clone());
        tasks.push(task);
        lease
    } else {
        tracing::info!(node = %fleet.node(), "no Dhan credentials in the config: this keeper follows the fleet and never mints");
        LeaseHandle::never()
    };
    keeper.set_coordinator(Coordinator::fleet(Arc::clone(&fleet), lease.clone()));
    tracing::info!(node = %fleet.node(), redis = %fleet.redis_at(), lease = %humantime::format_duration(fc.lease), "joining the fleet");
    let reread_every = timing.renew_every.min(Duration::from_secs(5));
    let options = FollowOptions { reread_every, heartbeat_ttl: fc.lease.max(reread_every * 3) };
    let (tx, rx) = mpsc::unbounded_channel::<SharedToken>();
    tasks.push(tokio::spawn(fleet::follow(
        fleet,
        Arc::clone(&keeper.clock),
        options,
        lease.clone(),
        None,
        shutdown.clone(),
        move |shared| {
            let _ = tx.send(shared);
        },
    )));
    tasks.push(tokio::spawn(adopter(Arc::clone(keeper), rx, shutdown.clone())));
    tasks.push(tokio::spawn(announcer(Arc::clone(keeper), lease.clone(), last.clone())));
    tasks.push(tokio::spawn(leadership(Arc::clone(keeper), lease, shutdown.clone())));
    Ok(tasks)
}

/// Takes in each record the follower hands over, in order.
async fn adopter(keeper: Arc<Keeper>, mut rx: mpsc::UnboundedReceiver<SharedToken>, shutdown: CancellationToken) {
    loop {
        let shared = tokio::select! {
            () = shutdown.cancelled() => return,
            s = rx.recv() => s,
        };
        let Some(shared) = shared else { return };
        keeper.adopt_shared(shared).await;
    }
}

/// Publishes the tokens this node obtains: at once, again on every lease change and every tick
/// until the record holds it (or a later one).
async fn announcer(keeper: Arc<Keeper>, mut lease: LeaseHandle, shutdown: CancellationToken) {
    let mut open = true;
    loop {
        keeper.try_announce().await;
        tokio::select! {
            // One last try: the keeper is idle by now, so what is pending is final.
            () = shutdown.cancelled() => return keeper.try_announce().await,
            () = keeper.fleet.pending_changed.notified() => {}
            ok = lease.changed(), if open => open = ok,
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

/// Watches the lease: on taking it, catches up and checks the token in hand; on any change,
/// wakes the loop; every tick, asks Redis who leads (for `/status`).
async fn leadership(keeper: Arc<Keeper>, mut lease: LeaseHandle, shutdown: CancellationToken) {
    let mut leading = false;
    let mut open = true;
    loop {
        let now_leading = lease.may_act(Instant::now());
        if now_leading && !leading {
            keeper.on_lease_taken().await;
        }
        if now_leading != leading {
            keeper.wake();
        }
        leading = now_leading;
        keeper.observe_fleet().await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            ok = lease.changed(), if open => open = ok,
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

/// Runs `poll` (the Telegram long poll) only while `keeper` keeps the bot: alone always; in a
/// fleet while it leads (or led last and Redis is unreachable). Leadership is re-checked on every
/// lease change and every second, and a poll in flight is dropped the moment it is lost, so the
/// new leader's `getUpdates` is not refused as a second poller.
pub async fn while_keeping_the_bot<F, Fut>(keeper: &Keeper, shutdown: &CancellationToken, mut poll: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(mut lease) = keeper.coordinator().lease().cloned() else {
        poll().await;
        return;
    };
    let mut open = true;
    loop {
        while !lease.keeps_the_bot(Instant::now()) {
            tokio::select! {
                () = shutdown.cancelled() => return,
                ok = lease.changed(), if open => open = ok,
                () = tokio::time::sleep(TICK) => {}
            }
        }
        tracing::info!("polling the Telegram bot (this keeper leads the fleet)");
        let lost = async {
            loop {
                tokio::select! {
                    ok = lease.changed(), if open => open = ok,
                    () = tokio::time::sleep(TICK) => {}
                }
                if !lease.keeps_the_bot(Instant::now()) {
                    break;
                }
            }
        };
        tokio::select! {
            () = poll() => return,
            () = lost => tracing::info!("no longer leading the fleet: stopped polling the Telegram bot"),
        }
    }
}
