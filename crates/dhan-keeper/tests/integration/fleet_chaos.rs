//! The chaos loop: random SIGKILLs, SIGTERMs and restarts of three keepers and random SIGSTOP
//! pauses of Redis, while tokens rotate every 4 s. At every 20 ms sample it checks that no running
//! keeper's file holds an expired token while Redis is up, and at the end that no two mints fell
//! inside one rotation (two keepers minting for the same rotation). The short run is in the
//! normal suite; `cargo test -p dhan-keeper --test integration fleet_chaos -- --ignored
//! --nocapture` runs the long one, whose figures are in docs/fleet.md.

use std::time::{Duration, Instant};

use crate::fleet_harness::{FleetStack, LEASE};

#[derive(Debug, Default)]
struct Tally {
    kills: usize,
    leader_kills: usize,
    terms: usize,
    pauses: usize,
}

/// Waits until the fleet has a leader and every running keeper holds Dhan's live token: the
/// end of an event's disturbance, so disturbances do not pile up beyond what one outage is.
async fn settle(s: &mut FleetStack) {
    let limit = Duration::from_secs(30);
    s.until("the fleet to settle", limit, |s| (s.leader().is_some() && s.all_on_live_token().is_some()).then_some(()))
        .await;
    for h in s.hosts.iter().filter(|h| h.running()) {
        h.wait_up().await;
    }
}

/// Samples the invariants for `d`.
async fn watch(s: &mut FleetStack, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        s.sample();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn chaos(events: usize) {
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut s = FleetStack::new(&[true, true, true]).await;
    s.start_all();
    settle(&mut s).await;
    let started = Instant::now();
    let first_mints = s.sim.mints();
    let mut tally = Tally::default();
    for _ in 0..events {
        watch(&mut s, Duration::from_millis(rng.u64(50..600))).await;
        match rng.u8(..10) {
            0..=5 => {
                // Half the kills go to the leader, the rest to any keeper.
                let target = match s.leader().filter(|_| rng.bool()) {
                    Some(l) => l,
                    None => s.hosts[rng.usize(..s.hosts.len())].name.clone(),
                };
                tally.leader_kills += usize::from(s.leader().as_deref() == Some(target.as_str()));
                tally.kills += 1;
                s.host(&target).kill9().await;
                watch(&mut s, Duration::from_millis(rng.u64(0..1500))).await;
                s.host(&target).start();
            }
            6..=7 => {
                tally.pauses += 1;
                s.redis_up = false;
                s.redis.pause();
                watch(&mut s, Duration::from_millis(rng.u64(100..(LEASE.as_millis() as u64 * 3 / 2)))).await;
                s.redis.resume();
                s.redis_up = true;
            }
            _ => {
                tally.terms += 1;
                let i = rng.usize(..s.hosts.len());
                assert_eq!(s.hosts[i].stop().await, 0);
                s.hosts[i].start();
            }
        }
        settle(&mut s).await;
    }
    let elapsed = started.elapsed();
    let rotations = s.sim.mints() - first_mints;
    let lonely = s.inv.seen_on.values().filter(|hosts| hosts.len() == 1).count();
    println!(
        "chaos: seed {seed}, {events} events ({} SIGKILL, {} of the leader; {} SIGTERM; {} Redis pauses) in {:.0?}; \
         {rotations} mints; double mints: {}; expired-token samples while Redis was up: {} of {}; samples of a \
         replaced (dead) token more than 1.5 s after a mint: {}; tokens that reached only one host: {lonely}",
        tally.kills,
        tally.leader_kills,
        tally.terms,
        tally.pauses,
        elapsed,
        s.double_mints(),
        s.inv.expired.len(),
        s.inv.samples,
        s.inv.stale.len(),
    );
    assert_eq!(s.double_mints(), 0, "seed {seed}: {:?}", s.inv.mints);
    assert!(s.inv.expired.is_empty(), "seed {seed}: {:?}", s.inv.expired);
    assert!(rotations > 0, "tokens rotated during the chaos");
    s.stop_all().await;
}

#[tokio::test]
async fn chaos_short_fifty_kills_and_pauses() {
    chaos(50).await;
}

#[tokio::test]
#[ignore = "about 5 minutes; run once with --ignored --nocapture and record the figures in docs/fleet.md"]
async fn chaos_long() {
    chaos(300).await;
}
