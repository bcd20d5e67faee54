//! The fleet's building blocks against a real `redis-server`: the lease, the compare-and-set
//! publish, sealing, the follower, and what a paused or restarted Redis does to them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeZone;
use dhan_keeper::clock::{SharedClock, SystemClock};
use dhan_keeper::config::FleetConfig;
use dhan_keeper::fleet::{
    self, Fleet, FleetError, FleetKey, FollowOptions, LeaseHandle, LeaseTiming, NodeName, RecordId, RedisUrl,
    SharedToken,
};
use dhan_keeper::secret::Secret;
use dhan_keeper::token::{Token, TokenSource};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::redis_server::RedisServer;

const CLIENT: &str = "1000000001";
const KEY: &str = "6b1f3c0e9a2d4b7c8e5f1a3b9c0d2e4f6a8b1c3d5e7f9a0b2c4d6e8f0a1b3c5d";
const MS: fn(u64) -> Duration = Duration::from_millis;

fn config(redis: &RedisServer, node: &str) -> FleetConfig {
    FleetConfig {
        redis_url: RedisUrl::parse(&redis.url()).expect("url"),
        node_name: NodeName::parse(node).expect("node"),
        fleet_key: FleetKey::parse(KEY).expect("key"),
        lease: Duration::from_secs(30),
    }
}

fn node(redis: &RedisServer, name: &str) -> Arc<Fleet> {
    Arc::new(Fleet::new(&config(redis, name), CLIENT, MS(300)).expect("fleet"))
}

fn token(text: &str, hour: u32) -> Token {
    Token {
        access_token: Secret::new(text),
        expires_at: dhan_keeper::ist::offset().with_ymd_and_hms(2026, 12, 1, hour, 0, 0).single().expect("time"),
        client_id: Some(CLIENT.into()),
        obtained_at: None,
        source: Some(TokenSource::Totp),
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    dhan_keeper::clock::Clock::now(&SystemClock)
}

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

/// Polls `check` every 10 ms until it holds or `within` has passed.
async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(MS(10)).await;
    }
    check()
}

#[tokio::test]
async fn only_one_of_several_contenders_holds_the_lease_and_only_it_renews() {
    let redis = RedisServer::start();
    let timing = LeaseTiming::new(Duration::from_secs(2));
    let nodes: Vec<Arc<Fleet>> = (0..5).map(|i| node(&redis, &format!("box-{i}"))).collect();
    let tries = futures_util::future::join_all(nodes.iter().map(|n| n.acquire(timing))).await;
    let winners: Vec<usize> =
        tries.iter().enumerate().filter(|(_, t)| matches!(t, Ok(Some(_)))).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one holder: {tries:?}");
    let w = winners[0];
    let lease = (tries[w].as_ref().ok().and_then(Option::as_ref).expect("lease")).clone();
    let (holder, ttl_left) = nodes[0].lease_holder().await.expect("read").expect("held");
    assert_eq!(holder, nodes[w].holder_id());
    assert!(ttl_left <= timing.ttl && ttl_left > timing.ttl / 2, "{ttl_left:?}");

    for (i, n) in nodes.iter().enumerate() {
        let renewed = n.renew(&lease).await.expect("renew");
        assert_eq!(renewed.is_some(), i == w, "node {i} renewing the lease of node {w}");
    }
    // Taking it again is a no-op for the holder, refused for the others.
    assert!(nodes[w].acquire(timing).await.expect("acquire").is_some());
    assert!(nodes[(w + 1) % 5].acquire(timing).await.expect("acquire").is_none());
    // Releasing: only the holder can, and then another takes it at once.
    assert!(nodes[w].release(lease).await.expect("release"));
    assert!(nodes[(w + 1) % 5].acquire(timing).await.expect("acquire").is_some());
}

#[tokio::test]
async fn a_lease_that_lapses_is_taken_over_and_the_old_holder_cannot_renew_it() {
    let redis = RedisServer::start();
    let timing = LeaseTiming::new(MS(500));
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let lease_a = a.acquire(timing).await.expect("acquire").expect("a leads");
    assert!(b.acquire(timing).await.expect("acquire").is_none());
    let started = Instant::now();
    let mut lease_b = None;
    while lease_b.is_none() && started.elapsed() < Duration::from_secs(3) {
        lease_b = b.acquire(timing).await.expect("acquire");
        tokio::time::sleep(MS(20)).await;
    }
    let took_at = Instant::now();
    assert!(lease_b.is_some(), "b takes over a lapsed lease");
    assert!(!lease_a.may_act(took_at), "a stopped acting before b could take over");
    assert!(took_at >= lease_a.may_act_until());
    assert!(a.renew(&lease_a).await.expect("renew").is_none(), "the old holder's renewal is refused");
    assert!(!a.release(lease_a).await.expect("release"), "and it cannot release b's lease");
    assert_eq!(a.lease_holder().await.expect("read").map(|h| h.0).as_deref(), Some(b.holder_id()));
}

#[tokio::test]
async fn publish_is_a_compare_and_set_on_the_holder_and_the_generation() {
    let redis = RedisServer::start();
    let timing = LeaseTiming::new(Duration::from_secs(2));
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let lease = a.acquire(timing).await.expect("acquire").expect("a leads");
    let now = now();
    let g1 = a.publish(&lease, None, &token("tok-one", 9), now).await.expect("first publish");
    assert_eq!(g1.generation, 1);
    assert!(matches!(a.publish(&lease, None, &token("tok-x", 9), now).await, Err(FleetError::Stale { current: 1 })));
    let g2 = a.publish(&lease, Some(&g1), &token("tok-two", 10), now).await.expect("second publish");
    assert_eq!((g2.generation, &g2.epoch), (2, &g1.epoch));
    let stale = a.publish(&lease, Some(&g1), &token("tok-x", 11), now).await;
    assert!(matches!(stale, Err(FleetError::Stale { current: 2 })), "{stale:?}");
    let other_epoch = RecordId { epoch: "someone-else".into(), generation: 2 };
    assert!(matches!(
        a.publish(&lease, Some(&other_epoch), &token("tok-x", 11), now).await,
        Err(FleetError::Stale { .. })
    ));

    // A keeper that lost the lease (here: released, and b took it) is refused by Redis even
    // though its own clock still lets it act.
    let kept = lease.clone();
    assert!(a.release(lease).await.expect("release"));
    let lease_b = b.acquire(timing).await.expect("acquire").expect("b leads");
    assert!(kept.may_act(Instant::now()));
    let refused = a.publish(&kept, Some(&g2), &token("tok-x", 11), now).await;
    assert!(matches!(refused, Err(FleetError::NotHolder)), "{refused:?}");
    // b cannot use a's lease object either, and with its own it publishes generation 3.
    assert!(matches!(b.publish(&kept, Some(&g2), &token("tok-x", 11), now).await, Err(FleetError::NotHolder)));
    let g3 = b.publish(&lease_b, Some(&g2), &token("tok-three", 11), now).await.expect("b publishes");
    assert_eq!(g3.generation, 3);

    let record = a.read().await.expect("read").expect("record");
    assert_eq!((record.id.clone(), record.holder.as_str()), (g3, "b"));
    let opened = a.open(&record).expect("a opens b's record");
    assert_eq!(opened.token.access_token.expose(), "tok-three");
    assert_eq!(opened.token.expires_at, token("", 11).expires_at);
    assert_eq!(opened.token.source, Some(TokenSource::Totp));
    // A keeper with another fleet_key cannot.
    let mut wrong = config(&redis, "c");
    wrong.fleet_key = FleetKey::parse(&KEY.replace('6', "7")).expect("key");
    let c = Fleet::new(&wrong, CLIENT, MS(300)).expect("fleet");
    assert!(matches!(c.open(&record), Err(FleetError::Record(m)) if m.contains("fleet_key")));
}

#[tokio::test]
async fn the_token_never_appears_in_redis_nor_on_the_channel() {
    let redis = RedisServer::start();
    let secret = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.SECRET-TOKEN-BODY-4711.sig";
    let a = node(&redis, "a");
    let mut events = redis::Client::open(redis.url()).expect("client").get_async_pubsub().await.expect("pubsub");
    events.subscribe(format!("dhan-keeper:{{{CLIENT}}}:events")).await.expect("subscribe");
    let mut events = events.into_on_message();

    let lease = a.acquire(LeaseTiming::new(Duration::from_secs(2))).await.expect("acquire").expect("leads");
    a.publish(&lease, None, &token(secret, 9), now()).await.expect("publish");
    a.heartbeat(fleet::Role::Leader, None, Some(now()), Duration::from_secs(5)).await.expect("heartbeat");

    let msg = tokio::time::timeout(Duration::from_secs(2), futures_util::StreamExt::next(&mut events))
        .await
        .expect("an event within 2 s")
        .expect("event");
    let payload: String = msg.get_payload().expect("text");
    let event: serde_json::Value = serde_json::from_str(&payload).expect("event is JSON");
    assert_eq!(event["generation"], 1);
    assert_eq!(event["holder"], "a");
    assert!(!payload.contains("SECRET-TOKEN"), "{payload}");

    let mut raw = redis.raw();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut raw).expect("keys");
    assert_eq!(keys.len(), 3, "lease, record, heartbeat: {keys:?}");
    let mut scanned = 0;
    let iter: Vec<String> = redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("COUNT")
        .arg(1000)
        .clone()
        .iter(&mut raw)
        .expect("scan")
        .collect::<Result<_, _>>()
        .expect("scan");
    for key in iter {
        scanned += 1;
        let dump: Vec<u8> = redis::cmd("DUMP").arg(&key).query(&mut raw).expect("dump");
        let text = String::from_utf8_lossy(&dump);
        for needle in [secret, "SECRET-TOKEN-BODY", KEY] {
            assert!(!text.contains(needle), "{needle:?} found in {key}");
            assert!(!key.contains(needle), "{needle:?} in the key name {key}");
        }
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut raw).expect("type");
        let readable: Vec<String> = match kind.as_str() {
            "hash" => redis::cmd("HGETALL").arg(&key).query(&mut raw).expect("hgetall"),
            "string" => vec![redis::cmd("GET").arg(&key).query(&mut raw).expect("get")],
            other => panic!("unexpected {other} at {key}"),
        };
        assert!(!readable.iter().any(|v| v.contains("SECRET-TOKEN")), "{key}: {readable:?}");
    }
    assert_eq!(scanned, 3);
}

/// A follower task whose news arrives on a channel.
fn start_follower(
    fleet: Arc<Fleet>,
    reread_every: Duration,
    stop: &CancellationToken,
) -> mpsc::UnboundedReceiver<(Instant, SharedToken)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let options = FollowOptions { reread_every, heartbeat_ttl: reread_every * 3 };
    tokio::spawn(fleet::follow(fleet, clock(), options, LeaseHandle::never(), None, stop.clone(), move |s| {
        let _ = tx.send((Instant::now(), s));
    }));
    rx
}

async fn next_news(
    rx: &mut mpsc::UnboundedReceiver<(Instant, SharedToken)>,
    within: Duration,
) -> (Instant, SharedToken) {
    tokio::time::timeout(within, rx.recv()).await.expect("news in time").expect("follower alive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_catches_each_published_token_within_a_second() {
    let redis = RedisServer::start();
    let stop = CancellationToken::new();
    let (leader, follower) = (node(&redis, "lead"), node(&redis, "follow"));
    // A long re-read period: only the event can explain a catch-up within a second.
    let mut news = start_follower(follower.clone(), Duration::from_secs(30), &stop);
    // Its first heartbeat comes after it subscribed: from then on no event can be missed.
    let deadline = Instant::now() + Duration::from_secs(2);
    while follower.nodes().await.expect("nodes").is_empty() {
        assert!(Instant::now() < deadline, "the follower announced itself");
        tokio::time::sleep(MS(10)).await;
    }
    let lease = leader.acquire(LeaseTiming::new(Duration::from_secs(5))).await.expect("acquire").expect("leads");
    let mut expected = None;
    for (i, text) in ["tok-1", "tok-2", "tok-3"].iter().enumerate() {
        let sent = Instant::now();
        let id = leader.publish(&lease, expected.as_ref(), &token(text, 9 + i as u32), now()).await.expect("publish");
        let (at, got) = next_news(&mut news, Duration::from_secs(1)).await;
        assert_eq!(got.token.access_token.expose(), *text);
        assert_eq!(got.id, id);
        assert!(at.duration_since(sent) < Duration::from_secs(1), "{:?}", at.duration_since(sent));
        expected = Some(id);
    }
    // Its heartbeat says what it has seen.
    let nodes = leader.nodes().await.expect("nodes");
    let me = nodes.iter().find(|n| n.node == "follow").expect("the follower's heartbeat");
    assert_eq!(me.role, "follower");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_catches_up_after_lost_events_and_after_redis_restarts_empty() {
    let mut redis = RedisServer::start();
    let stop = CancellationToken::new();
    let (leader, follower) = (node(&redis, "lead"), node(&redis, "follow"));
    let reread = MS(300);
    let mut news = start_follower(follower.clone(), reread, &stop);
    let timing = LeaseTiming::new(Duration::from_secs(5));
    let lease = leader.acquire(timing).await.expect("acquire").expect("leads");
    let g1 = leader.publish(&lease, None, &token("tok-1", 9), now()).await.expect("publish");
    assert_eq!(next_news(&mut news, Duration::from_secs(1)).await.1.id, g1);

    // Events lost: the follower's subscription is cut just before a publication.
    let mut raw = redis.raw();
    let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query(&mut raw).expect("kill");
    assert_eq!(killed, 1, "the follower was subscribed");
    let g2 = leader.publish(&lease, Some(&g1), &token("tok-2", 10), now()).await.expect("publish");
    let (_, got) = next_news(&mut news, Duration::from_secs(2)).await;
    assert_eq!((got.id, got.token.access_token.expose()), (g2, "tok-2"));

    // Redis restarts empty: the leader takes the lease again and publishes a new epoch.
    redis.start_again();
    let restarted = Instant::now();
    let lease = loop {
        match leader.acquire(timing).await {
            Ok(Some(l)) => break l,
            _ if restarted.elapsed() < Duration::from_secs(3) => tokio::time::sleep(MS(20)).await,
            other => panic!("no lease after the restart: {other:?}"),
        }
    };
    assert!(leader.read().await.expect("read").is_none(), "the restarted Redis is empty");
    let g3 = leader.publish(&lease, None, &token("tok-3", 11), now()).await.expect("publish");
    assert_eq!(g3.generation, 1, "generations start over in the new epoch");
    let (at, got) = next_news(&mut news, Duration::from_secs(3)).await;
    assert_eq!((got.id, got.token.access_token.expose()), (g3, "tok-3"));
    assert!(at.duration_since(restarted) < Duration::from_secs(3));
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_makes_the_holder_stop_acting_before_its_lease_could_pass() {
    let redis = RedisServer::start();
    let stop = CancellationToken::new();
    let timing = LeaseTiming::new(MS(1200));
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let (handle_a, task_a) = fleet::spawn_campaign(a.clone(), timing, stop.clone());
    assert!(eventually(Duration::from_secs(2), || handle_a.may_act(Instant::now())).await, "a leads");
    // Let one renewal happen, so the lease in hand is a renewed one.
    let first = handle_a.current(Instant::now()).expect("lease");
    assert!(eventually(Duration::from_secs(2), || handle_a.current(Instant::now()).is_some_and(|l| l != first)).await);

    redis.pause();
    let paused = Instant::now();
    let last = handle_a.current(Instant::now()).expect("still held right after the pause");
    assert!(eventually(Duration::from_secs(3), || !handle_a.may_act(Instant::now())).await, "a stops acting");
    let stopped = Instant::now();
    // It stopped at the end of its lease minus the margin, never later than Redis's expiry
    // (which counts from when Redis received the last renewal, after `sent_at`).
    assert!(stopped >= last.may_act_until(), "it did not stop early without reason");
    // The exact instant, not a polling delay: the lease in hand (unchanged, Redis being paused)
    // allows acting until `may_act_until` and not a moment after.
    let end = last.may_act_until();
    assert!(last.may_act(end - MS(1)) && !last.may_act(end), "acting ends exactly at may_act_until");
    assert!(stopped - paused <= timing.ttl, "within one TTL of the pause: {:?}", stopped - paused);

    // b contends from now on; during the pause its SET waits in Redis's socket like a's retries.
    let (handle_b, task_b) = fleet::spawn_campaign(b, timing, stop.clone());
    tokio::time::sleep(MS(200)).await;
    assert!(!handle_a.may_act(Instant::now()) && !handle_b.may_act(Instant::now()), "nobody acts while paused");
    // The last holder keeps the bot (never minting) while Redis cannot be reached; b never held.
    assert!(handle_a.keeps_the_bot(Instant::now()) && !handle_b.keeps_the_bot(Instant::now()));
    redis.resume();
    // Whichever command Redis reads first wins; at no moment do both act, and one leads again
    // within a TTL and a beat.
    let resumed = Instant::now();
    let mut leader = None;
    while resumed.elapsed() < timing.ttl + timing.renew_every * 2 {
        let now = Instant::now();
        let (x, y) = (handle_a.may_act(now), handle_b.may_act(now));
        assert!(!(x && y), "two leaders at once");
        if leader.is_none() && (x || y) {
            leader = Some((if x { "a" } else { "b" }, now));
        }
        tokio::time::sleep(MS(10)).await;
    }
    let (who, at) = leader.expect("someone leads again after the resume");
    assert!(at > stopped);
    eprintln!("stopped acting {:?} after the pause; {who} led {:?} after the resume", stopped - paused, at - resumed);
    stop.cancel();
    task_b.await.expect("campaign ends");
    task_a.await.expect("campaign ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_releases_its_lease_on_shutdown_so_another_leads_at_once() {
    let redis = RedisServer::start();
    let timing = LeaseTiming::new(Duration::from_secs(10));
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let (handle_a, task_a) = fleet::spawn_campaign(node(&redis, "a"), timing, stop_a.clone());
    assert!(eventually(Duration::from_secs(2), || handle_a.may_act(Instant::now())).await);
    let b = node(&redis, "b");
    assert!(b.acquire(timing).await.expect("acquire").is_none());
    stop_a.cancel();
    task_a.await.expect("campaign ends");
    assert!(!handle_a.may_act(Instant::now()));
    assert!(b.acquire(timing).await.expect("acquire").is_some(), "released, not left to lapse for 10 s");
    stop_b.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_status_shows_nodes_lease_and_generation_but_no_secret() {
    const PASSWORD: &str = "redis-pw-Quokka-8812";
    let redis = RedisServer::start_with_password(Some(PASSWORD));
    let (lead, follow) = (node(&redis, "box-1"), node(&redis, "box-2"));
    let lease = lead.acquire(LeaseTiming::new(Duration::from_secs(20))).await.expect("acquire").expect("leads");
    let id = lead.publish(&lease, None, &token("tok-SHOULD-NOT-SHOW", 9), now()).await.expect("publish");
    lead.heartbeat(fleet::Role::Leader, Some(&id), Some(now()), Duration::from_secs(20)).await.expect("hb");
    follow.heartbeat(fleet::Role::Follower, Some(&id), Some(now()), Duration::from_secs(20)).await.expect("hb");

    let ws = crate::helpers::Workspace { dir: tempfile::tempdir().expect("tempdir") };
    let config = |url: &str| {
        serde_json::json!({
            "client_id": CLIENT, "pin": crate::helpers::PIN, "totp_secret": crate::helpers::TOTP_SECRET,
            "redis_url": url, "node_name": "box-2", "fleet_key": KEY,
        })
        .to_string()
    };
    ws.write_config(&config(&redis.url()));
    let run = ws.run(&["fleet", "status"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let out = &run.stdout;
    assert!(out.contains(&format!("at redis://127.0.0.1:{} (this node: box-2)", redis.port)), "{out}");
    assert!(out.contains("Lease: held by box-1 ("), "{out}");
    assert!(out.contains("Shared token: generation 1") && out.contains("published by box-1"), "{out}");
    assert!(out.contains("Nodes (2):") && out.contains("(this node)"), "{out}");
    for secret in [PASSWORD, "tok-SHOULD-NOT-SHOW", KEY] {
        assert!(!run.all().contains(secret), "{secret} leaked:\n{}", run.all());
    }
    let run = ws.run(&["fleet", "status", "--json"]).await;
    let j: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!((j["lease"]["holder"].as_str(), j["token"]["generation"].as_u64()), (Some("box-1"), Some(1)));
    assert_eq!(j["nodes"].as_array().map(Vec::len), Some(2));

    // A wrong password: a clear failure that does not echo either password.
    ws.write_config(&config(&format!("redis://:wrong-Pw-5521@127.0.0.1:{}", redis.port)));
    let run = ws.run(&["fleet", "status"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains(&format!("Redis at redis://127.0.0.1:{}", redis.port)), "{}", run.stderr);
    assert!(!run.all().contains("wrong-Pw-5521") && !run.all().contains(PASSWORD), "{}", run.all());
    // Without redis_url there is no fleet to show.
    ws.write_config(&serde_json::json!({"client_id": CLIENT, "pin": crate::helpers::PIN, "totp_secret": crate::helpers::TOTP_SECRET}).to_string());
    let run = ws.run(&["fleet", "status"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("`redis_url` is not set"), "{}", run.stderr);
}

#[test]
fn fleet_keys_load_from_files_and_the_environment_and_default_to_the_host_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url_file, key_file) = (dir.path().join("redis_url"), dir.path().join("fleet_key"));
    crate::helpers::write_private(&url_file, "redis://:pw-from-file@127.0.0.1:6379/1\n");
    crate::helpers::write_private(&key_file, &format!("{KEY}\n"));
    let config = dir.path().join("dhan_config.json");
    let base = serde_json::json!({
        "client_id": CLIENT, "pin": crate::helpers::PIN, "totp_secret": crate::helpers::TOTP_SECRET,
        "redis_url_file": url_file, "fleet_key_file": key_file,
    });
    crate::helpers::write_private(&config, &base.to_string());
    let cfg = dhan_keeper::config::Config::load_with_env(Some(config.clone()), &|_| None).expect("loads");
    let fleet = cfg.fleet.as_ref().expect("a fleet");
    assert_eq!(fleet.redis_url.redacted(), "redis://127.0.0.1:6379/1");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(fleet.node_name.as_str(), host.trim());
    assert!(!format!("{cfg:?}").contains("pw-from-file"), "Debug of the whole config hides the password");

    // The environment overrides the file's node name; a bad key names itself and the fix.
    let env = |k: &str| match k {
        "DHAN_KEEPER_NODE_NAME" => Some("env-node".to_string()),
        _ => None,
    };
    let cfg = dhan_keeper::config::Config::load_with_env(Some(config.clone()), &env).expect("loads");
    assert_eq!(cfg.fleet.expect("fleet").node_name.as_str(), "env-node");
    crate::helpers::write_private(&key_file, "not-a-key-Wombat\n");
    let err = dhan_keeper::config::Config::load_with_env(Some(config), &|_| None).expect_err("bad key").to_string();
    assert!(err.contains("`fleet_key`") && err.contains("openssl rand -hex 32"), "{err}");
    assert!(!err.contains("Wombat") && !err.contains("pw-from-file"), "{err}");
}

#[tokio::test]
async fn rediss_to_a_plain_server_fails_cleanly() {
    // The TLS stack (rustls, ring) is set up and reports a handshake failure, not a panic.
    let redis = RedisServer::start();
    let mut cfg = config(&redis, "a");
    cfg.redis_url = RedisUrl::parse(&format!("rediss://127.0.0.1:{}", redis.port)).expect("url");
    let fleet = Fleet::new(&cfg, CLIENT, MS(500)).expect("fleet");
    let err = fleet.acquire(LeaseTiming::new(Duration::from_secs(2))).await.expect_err("no TLS there");
    assert!(err.to_string().contains(&format!("Redis at rediss://127.0.0.1:{}", redis.port)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_gates_minting_adopts_a_newer_shared_token_and_publishes_on_the_latest_generation() {
    use dhan_keeper::fleet::Coordinator;
    let redis = RedisServer::start();
    let timing = LeaseTiming::new(Duration::from_secs(5));
    let stop = CancellationToken::new();
    let alone = Coordinator::alone();
    assert!(alone.may_mint(Instant::now(), Duration::from_secs(15)) && alone.keeps_the_bot(Instant::now()));
    assert!(alone.announce(&token("t", 9), now()).await.expect("nothing to do").is_none());

    // An earlier leader x published generation 1 and left.
    let x = node(&redis, "x");
    let lease_x = x.acquire(timing).await.expect("acquire").expect("x leads");
    x.publish(&lease_x, None, &token("tok-from-x", 10), now()).await.expect("publish");
    assert!(x.release(lease_x).await.expect("release"));

    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let (lease_a, _task) = fleet::spawn_campaign(a.clone(), timing, stop.clone());
    assert!(eventually(Duration::from_secs(2), || lease_a.may_act(Instant::now())).await);
    let (ca, cb) = (Coordinator::fleet(a.clone(), lease_a.clone()), Coordinator::fleet(b, LeaseHandle::never()));
    assert!(ca.may_mint(Instant::now(), Duration::from_secs(1)));
    assert!(!ca.may_mint(Instant::now(), Duration::from_secs(60)), "a mint must fit inside the lease");
    assert!(!cb.may_mint(Instant::now(), Duration::from_secs(1)) && !cb.keeps_the_bot(Instant::now()));

    // Before minting, a holding an older token finds x's newer one and adopts it.
    let adopt = ca.newer_shared(Some(&token("tok-old", 9))).await.expect("read").expect("newer");
    assert_eq!(adopt.token.access_token.expose(), "tok-from-x");
    assert!(ca.newer_shared(Some(&adopt.token)).await.expect("read").is_none(), "nothing newer than itself");

    // Behind the coordinator's back, generation 2 appears (same holder): announce finds its
    // expected generation stale, re-reads, and publishes on top of it.
    let held = lease_a.current(Instant::now()).expect("held");
    let g1 = ca.seen().expect("seen");
    let g2 = a.publish(&held, Some(&g1), &token("tok-side", 11), now()).await.expect("side publish");
    let id = ca.announce(&token("tok-from-a", 12), now()).await.expect("publish").expect("fleet");
    assert_eq!((id.generation, g2.generation), (3, 2));
    // If what appeared meanwhile is newer than the token being announced, announce refuses
    // (Stale) and leaves the newer one for the keeper to adopt.
    a.publish(&held, Some(&id), &token("tok-newer", 14), now()).await.expect("side publish");
    assert!(matches!(ca.announce(&token("tok-older", 13), now()).await, Err(FleetError::Stale { current: 4 })));
    assert_eq!(ca.seen().map(|s| s.generation), Some(4));
    let got = cb.newer_shared(None).await.expect("read").expect("b sees a's token");
    assert_eq!(got.token.access_token.expose(), "tok-newer");
    // b's own (older) token does not replace a's on announce: b is not the holder anyway.
    assert!(matches!(cb.announce(&token("tok-b", 12), now()).await, Err(FleetError::NotHolder)));
    stop.cancel();
}

#[tokio::test]
async fn a_non_holder_offers_a_token_it_obtained_and_only_a_later_one_is_taken() {
    use dhan_keeper::fleet::{Coordinator, Offered};
    let redis = RedisServer::start();
    let timing = LeaseTiming::new(Duration::from_secs(5));
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let cb = Coordinator::fleet(b.clone(), LeaseHandle::never());
    // No record yet: the offer waits for the leader, which seeds the record.
    assert!(!cb.offer(&token("tok-pasted", 11), now()).await.expect("offer"), "kept pending");
    let lease = a.acquire(timing).await.expect("acquire").expect("a leads");
    let g1 = a.publish(&lease, None, &token("tok-a", 10), now()).await.expect("publish");
    // b (no lease) obtained a later token (a paste, a consent login): the record takes it.
    assert!(cb.offer(&token("tok-pasted", 11), now()).await.expect("offer"));
    let shared = a.open(&a.read().await.expect("read").expect("record")).expect("opens");
    assert_eq!((shared.token.access_token.expose(), shared.holder.as_str()), ("tok-pasted", "b"));
    assert_eq!(shared.id.generation, g1.generation + 1);
    // An earlier token is not taken: the record keeps the newest.
    assert_eq!(b.offer(&shared.id, &token("tok-older", 9), now()).await.expect("offer"), Offered::NotLater);
    // An offer on a generation that moved on is stale, and the coordinator retries on the latest.
    assert!(matches!(b.offer(&g1, &token("tok-late", 12), now()).await, Err(FleetError::Stale { .. })));
    assert!(cb.offer(&token("tok-late", 12), now()).await.expect("offer on the latest"));
    let latest = a.open(&a.read().await.expect("read").expect("record")).expect("opens");
    assert_eq!(latest.token.access_token.expose(), "tok-late");
    // The holder's own compare-and-set still works on top of an offer.
    let next = a.publish(&lease, Some(&latest.id), &token("tok-a2", 13), now()).await.expect("publish");
    assert_eq!(next.generation, latest.id.generation + 1);
}

#[tokio::test]
async fn a_lease_that_lives_only_in_memory_is_no_licence_to_mint() {
    use dhan_keeper::fleet::Coordinator;
    let redis = RedisServer::start();
    let timing = LeaseTiming::new(Duration::from_secs(10));
    let stop = CancellationToken::new();
    let a = node(&redis, "a");
    let (lease_a, _task) = fleet::spawn_campaign(a.clone(), timing, stop.clone());
    assert!(eventually(Duration::from_secs(2), || lease_a.may_act(Instant::now())).await, "a leads");
    let ca = Coordinator::fleet(a.clone(), lease_a.clone());
    assert!(ca.confirm(Duration::from_secs(1)).await.expect("confirm"), "the holder is confirmed in Redis");
    assert!(!ca.confirm(Duration::from_secs(60)).await.expect("confirm"), "a request must fit inside the lease");
    // Redis loses the key (a restart with persistence off, a failover) and b takes it at once,
    // while a's own view of its lease has seconds left.
    let mut raw = redis.raw();
    let _: () = redis::cmd("FLUSHALL").query(&mut raw).expect("flush");
    let b = node(&redis, "b");
    assert!(b.acquire(timing).await.expect("acquire").is_some(), "b takes the lost lease");
    assert!(lease_a.may_act(Instant::now()), "a's memory still says it leads");
    assert!(!ca.confirm(Duration::from_secs(1)).await.expect("confirm"), "but Redis says otherwise: no mint");
    stop.cancel();
}
