//! The fleet wired into the daemon: three real `dhan-keeper run` processes, one real
//! `redis-server`, the simulators. One mint per rotation fleet-wide, every host on the new token
//! within a second, a SIGKILLed leader replaced within the lease, Redis stopped, paused and
//! restarted empty, a follower without credentials, an admin's override, and no token in Redis.

use std::time::{Duration, Instant};

use crate::daemon::CHAT;
use crate::fleet_harness::{FLEET_KEY, FleetStack, LEASE};

/// A generous bound for waits that the protocol makes short (a machine under load is slow).
const PATIENCE: Duration = Duration::from_secs(20);

/// Waits for the next rotation after the current live token, then for every running host to
/// hold it; returns how long the last host took after the mint was seen.
async fn next_rotation(s: &mut FleetStack) -> Duration {
    let before = s.sim.active_token();
    let mints = s.sim.mints();
    s.until("the next rotation", PATIENCE, |s| (s.sim.mints() > mints).then_some(())).await;
    let seen = Instant::now();
    s.until("every host on the new token", PATIENCE, |s| s.all_on_live_token().filter(|t| Some(t) != before.as_ref()))
        .await;
    seen.elapsed()
}

#[tokio::test]
async fn three_keepers_mint_once_per_rotation_and_share_the_token() {
    // box-3 has no Dhan credentials: a follower only. Its own hook fails: only it can tell.
    let mut s = FleetStack::new(&[true, true, false]).await;
    let path = s.hosts[2].ws.config_path();
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("config")).expect("json");
    cfg["on_refresh"] = serde_json::json!(["false"]);
    s.hosts[2].ws.write_config(&cfg.to_string());
    s.start_all();
    s.until("every host on the first token", PATIENCE, |s| s.all_on_live_token()).await;
    let leader = s.until("a leader", PATIENCE, |s| s.leader()).await;
    assert_ne!(leader, "box-3", "a follower without credentials never campaigns");
    let mut lags = Vec::new();
    for _ in 0..3 {
        lags.push(next_rotation(&mut s).await);
    }
    println!("rotations: {}, mints: {}, lag of the last host after each mint: {lags:?}", lags.len(), s.sim.mints());
    assert!(lags.iter().all(|l| *l < Duration::from_secs(1)), "every token file follows within a second: {lags:?}");
    assert_eq!(s.double_mints(), 0, "one mint per rotation: {:?}", s.inv.mints);
    assert!(s.inv.expired.is_empty(), "{:?}", s.inv.expired);
    assert!(s.inv.stale.is_empty(), "every host on Dhan's live token: {:?}", s.inv.stale);

    // Only the leader answers the bot, and /status names it.
    let leader = s.leader().expect("a leader");
    s.tg.inject_text(CHAT, CHAT, "/status");
    s.until("the /status reply", PATIENCE, |s| s.tg.sent(CHAT).iter().any(|m| fleet_line(m).is_some()).then_some(()))
        .await;
    s.tg.inject_text(CHAT, CHAT, "/help");
    s.until("the /help reply", PATIENCE, |s| {
        s.tg.sent(CHAT).iter().any(|m| m["text"].as_str().is_some_and(|t| t.contains("/pause"))).then_some(())
    })
    .await;
    let lines: Vec<String> = s.tg.sent(CHAT).iter().filter_map(fleet_line).collect();
    assert_eq!(lines.len(), 1, "exactly one keeper answered: {lines:?}");
    assert!(lines[0].contains(&format!("this node ({leader}) holds the lease")), "{lines:?}");
    // The follower reports its own failed hook, named, though it does not keep the bot.
    s.until("box-3's hook failure reaching the admin", PATIENCE, |s| {
        s.tg.sent(CHAT)
            .iter()
            .any(|m| {
                m["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("🖥 box-3: ⚠️") && t.contains("on_refresh command failed"))
            })
            .then_some(())
    })
    .await;
    let rotations =
        s.tg.sent(CHAT).iter().filter(|m| m["text"].as_str().is_some_and(|t| t.contains("New Dhan token"))).count();
    assert!(rotations as u64 <= s.sim.mints(), "followers send no rotation messages");

    // /metrics: one leader, the same generation everywhere.
    let mut leaders = 0;
    let mut generations = Vec::new();
    for h in &s.hosts {
        let m = h.metrics().await;
        leaders += usize::from(gauge(&m, "dhan_keeper_fleet_leader") == Some(1.0));
        generations.push(gauge(&m, "dhan_keeper_fleet_generation"));
    }
    assert_eq!(leaders, 1);
    assert!(generations.windows(2).all(|w| w[0] == w[1]) && generations[0] >= Some(4.0), "{generations:?}");

    // `fleet status` from the follower's host: every node, the holder, the generation.
    let run = s.hosts[2].ws.run(&["fleet", "status", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let j: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(j["lease"]["holder"], leader.as_str());
    assert_eq!(j["nodes"].as_array().map(Vec::len), Some(3), "{j}");
    assert!(j["nodes"].as_array().is_some_and(|n| n.iter().all(|n| n["caught_up_at"].is_string())), "{j}");
    run.assert_no_secrets();

    // `dhan-keeper refresh` on a fleet host refuses rather than mint outside the lease. Every
    // keeper is stopped first, so no scheduled rotation can hide a mint by the CLI.
    for h in &mut s.hosts {
        assert_eq!(h.stop().await, 0, "{} exits 0 on SIGTERM", h.name);
    }
    let mints = s.sim.mints();
    let run = s.hosts[0].ws.run(&["refresh"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("part of a fleet"), "{}", run.stderr);
    assert_eq!(s.sim.mints(), mints, "the CLI did not mint");

    assert_no_token_in_redis(&s);
    s.stop_all().await;
}

#[tokio::test]
async fn a_killed_leader_is_replaced_within_the_lease_and_rotation_stays_on_schedule() {
    let mut s = FleetStack::new(&[true, true, true]).await;
    s.start_all();
    s.until("every host on the first token", PATIENCE, |s| s.all_on_live_token()).await;
    next_rotation(&mut s).await;
    let leader = s.until("a leader", PATIENCE, |s| s.leader()).await;
    let killed = Instant::now();
    s.host(&leader).kill9().await;
    let next = s.until("a new leader", PATIENCE, |s| s.leader().filter(|l| *l != leader)).await;
    let took = killed.elapsed();
    println!("leader {leader} killed; {next} leads after {took:?} (lease {LEASE:?})");
    // The lease lapses after its TTL; a contender retries every third of it. Slack for load.
    assert!(took < LEASE + LEASE / 3 + Duration::from_secs(2), "{took:?}");
    // The next rotation happens before the token expires (the invariants check every sample).
    next_rotation(&mut s).await;
    next_rotation(&mut s).await;
    s.host(&leader).start();
    next_rotation(&mut s).await;
    assert_eq!(s.double_mints(), 0, "{:?}", s.inv.mints);
    assert!(s.inv.expired.is_empty(), "{:?}", s.inv.expired);
    assert!(s.inv.stale.is_empty(), "every host on Dhan's live token: {:?}", s.inv.stale);
    s.stop_all().await;
}

#[tokio::test]
async fn redis_stopped_paused_and_restarted_empty_never_causes_a_double_mint() {
    let mut s = FleetStack::new(&[true, true, true]).await;
    s.start_all();
    s.until("every host on the first token", PATIENCE, |s| s.all_on_live_token()).await;

    // Stopped: every keeper serves its token; the rotation falls due and is held.
    s.redis_up = false;
    s.redis.stop();
    let mints = s.sim.mints();
    s.until("the rotation held", PATIENCE, |s| {
        s.hosts.iter().any(|h| h.log().contains("automatic rotation is held")).then_some(())
    })
    .await;
    for h in &s.hosts {
        assert_eq!(h.get_token_status().await, 200, "{} serves its token while Redis is down", h.name);
    }
    assert_eq!(s.sim.mints(), mints, "nobody mints without the lease");

    // Restarted empty: a leader again, the record re-seeded, rotation resumes.
    s.redis.start_again();
    s.redis_up = true;
    next_rotation(&mut s).await;
    let record = shared_generation(&s);
    assert!(record.is_some(), "the record is rebuilt");

    // Paused: commands hang; nobody acts on a lease it cannot renew; tokens still served.
    s.redis_up = false;
    s.redis.pause();
    let paused = Instant::now();
    let mints = s.sim.mints();
    while paused.elapsed() < LEASE * 2 {
        s.sample();
        for h in &s.hosts {
            assert_eq!(h.get_token_status().await, 200, "{} serves its token while Redis is paused", h.name);
        }
    }
    assert!(s.sim.mints() <= mints + 1, "at most the leader's own mint inside its lease");
    s.redis.resume();
    s.redis_up = true;
    next_rotation(&mut s).await;
    next_rotation(&mut s).await;
    assert_eq!(s.double_mints(), 0, "{:?}", s.inv.mints);
    assert!(s.inv.expired.is_empty(), "{:?}", s.inv.expired);
    assert!(s.inv.stale.is_empty(), "every host on Dhan's live token: {:?}", s.inv.stale);
    assert_no_token_in_redis(&s);
    s.stop_all().await;
}

#[tokio::test]
async fn an_admins_refresh_overrides_an_outage_once_and_is_shared_when_redis_returns() {
    let mut s = FleetStack::new(&[true, false, false]).await;
    s.start_all();
    s.until("every host on the first token", PATIENCE, |s| s.all_on_live_token()).await;
    s.redis_up = false;
    s.redis.stop();
    s.until("the held notice", PATIENCE, |s| {
        s.tg.sent(CHAT).iter().any(|m| m["text"].as_str().is_some_and(|t| t.contains("rotation is held"))).then_some(())
    })
    .await;
    let mints = s.sim.mints();
    // A plain /refresh does not override: this host may only be cut off from a Redis others
    // still reach. The reply says how to override, and nothing is minted.
    s.tg.inject_text(CHAT, CHAT, "/refresh");
    s.until("the refusal that names /refresh force", PATIENCE, |s| {
        s.tg.sent(CHAT)
            .iter()
            .any(|m| m["text"].as_str().is_some_and(|t| t.contains("No new token") && t.contains("/refresh force")))
            .then_some(())
    })
    .await;
    assert_eq!(s.sim.mints(), mints, "a plain /refresh never mints without the lease");
    s.tg.inject_text(CHAT, CHAT, "/refresh force");
    s.until("the override", PATIENCE, |s| (s.sim.mints() > mints).then_some(())).await;
    assert!(s.tg.sent(CHAT).iter().any(|m| m["text"].as_str().is_some_and(|t| t.contains("without the fleet lease"))));
    let minted = s.sim.active_token().expect("live token");
    assert_eq!(s.hosts[0].token().map(|t| t.0), Some(minted.clone()));
    s.redis.start_again();
    s.redis_up = true;
    s.until("the followers take the override's token", PATIENCE, |s| s.all_on_live_token().filter(|t| *t == minted))
        .await;
    assert_eq!(s.sim.mints(), mints + 1, "the override minted once");
    s.stop_all().await;
}

/// The fleet line of a /status reply.
fn fleet_line(m: &serde_json::Value) -> Option<String> {
    m["text"].as_str()?.lines().find(|l| l.starts_with("🛰 Fleet:")).map(str::to_string)
}

fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))?.rsplit(' ').next()?.parse().ok()
}

fn shared_generation(s: &FleetStack) -> Option<u64> {
    let mut c = s.redis.raw();
    redis::cmd("HGET").arg("dhan-keeper:{1000000001}:token").arg("generation").query(&mut c).ok()
}

/// SCAN every key and DUMP it: no access token Dhan issued, and not the fleet key.
fn assert_no_token_in_redis(s: &FleetStack) {
    let mut c = s.redis.raw();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).expect("keys");
    let scanned: Vec<String> =
        redis::Commands::scan::<String>(&mut c).expect("scan").collect::<Result<_, _>>().expect("scan");
    assert_eq!(keys.len(), scanned.len());
    assert!(keys.iter().any(|k| k.ends_with(":token")), "{keys:?}");
    let tokens = s.sim.all_tokens();
    for key in &scanned {
        let dump: Vec<u8> = redis::cmd("DUMP").arg(key).query(&mut c).expect("dump");
        for secret in tokens.iter().map(String::as_str).chain([FLEET_KEY]) {
            assert!(!dump.windows(secret.len()).any(|w| w == secret.as_bytes()), "{key} holds a secret");
            // The JWT's signature part alone must not be there either.
            let tail = secret.rsplit('.').next().unwrap_or(secret);
            assert!(!dump.windows(tail.len()).any(|w| w == tail.as_bytes()), "{key} holds part of a token");
        }
    }
}
