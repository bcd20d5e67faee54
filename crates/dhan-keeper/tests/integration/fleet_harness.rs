//! Harness for fleet tests of the real binary: one simulated Dhan, one simulated Telegram, one
//! real `redis-server`, and several `dhan-keeper run` processes, each in its own directory with
//! its own token file, as on separate hosts. Every wait polls a condition with a deadline and,
//! at each poll, samples the invariants the fleet must keep ([`Invariants`]).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dhan_sim::{DhanSim, SimConfig, TelegramSim};
use serde_json::{Value, json};

use crate::daemon::{CHAT, Daemon, free_port, now, quick_keys};
use crate::helpers::{self, BOT_TOKEN, HTTP_TOKEN, Workspace};
use crate::redis_server::RedisServer;

pub const FLEET_KEY: &str = "5a1f3c0e9a2d4b7c8e5f1a3b9c0d2e4f6a8b1c3d5e7f9a0b2c4d6e8f0a1b3c5e";
pub const LEASE_KEY: &str = "dhan-keeper:{1000000001}:lease";

/// Token lifetime and how long before expiry the leader rotates: one rotation every 4 s, with
/// 8 s of margin, so one outage of the leader (a Redis pause of up to 3 s, then a takeover of up
/// to 2.7 s) fits inside it as an outage of minutes fits inside the default 30 min.
pub const LIFETIME_S: u64 = 12;
pub const REFRESH_BEFORE_S: u64 = 8;
/// The lease: renewed every third, a tenth as the margin. A dead leader is replaced within
/// TTL + one renewal beat (2.7 s), well inside the 4 s between a rotation and expiry.
pub const LEASE: Duration = Duration::from_secs(2);
/// How long a (re)started keeper may take to catch up before the invariants count it.
pub const START_GRACE: Duration = Duration::from_secs(2);

/// One host: a directory with its config and token file, its HTTP port, maybe its keeper.
pub struct Host {
    pub name: String,
    pub ws: Workspace,
    pub http_port: u16,
    pub daemon: Option<Daemon>,
    /// When its keeper last started.
    pub started: Option<Instant>,
    /// Every log line of every process this host ran, for the secret audit.
    pub logs: String,
}

impl Host {
    pub fn start(&mut self) {
        assert!(self.daemon.is_none(), "{} is already running", self.name);
        self.daemon = Some(Daemon::start(&self.ws));
        self.started = Some(Instant::now());
    }

    pub async fn kill9(&mut self) {
        if let Some(d) = self.daemon.take() {
            self.logs.push_str(&d.log());
            d.kill9().await;
        }
    }

    pub async fn stop(&mut self) -> i32 {
        match self.daemon.take() {
            Some(d) => {
                let (code, _, log) = d.stop().await;
                self.logs.push_str(&log);
                code
            }
            None => 0,
        }
    }

    pub fn running(&self) -> bool {
        self.daemon.is_some()
    }

    /// Running for longer than [`START_GRACE`]: a keeper restarted after its token expired
    /// catches up (connects to Redis, reads the record) within that.
    pub fn settled(&self) -> bool {
        self.running() && self.started.is_some_and(|t| t.elapsed() > START_GRACE)
    }

    pub fn log(&self) -> String {
        format!("{}{}", self.logs, self.daemon.as_ref().map(Daemon::log).unwrap_or_default())
    }

    /// The token file's access token and expiry, if the file is there and whole.
    pub fn token(&self) -> Option<(String, DateTime<Utc>)> {
        let v: Value = serde_json::from_slice(&std::fs::read(self.ws.token_path()).ok()?).ok()?;
        let exp = DateTime::parse_from_rfc3339(v["expires_at"].as_str()?).ok()?.with_timezone(&Utc);
        Some((v["access_token"].as_str()?.to_string(), exp))
    }

    /// `GET /token` with the bearer: the status code, or 0 when nothing answered.
    pub async fn get_token_status(&self) -> u16 {
        let url = format!("http://127.0.0.1:{}/token", self.http_port);
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("client");
        match client.get(url).bearer_auth(HTTP_TOKEN).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// Waits until the keeper answers `/token` (it is up, its signal handlers installed).
    pub async fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.get_token_status().await != 200 {
            assert!(Instant::now() < deadline, "{} does not serve /token", self.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.http_port);
        reqwest::get(url).await.expect("metrics").text().await.expect("body")
    }
}

/// What the whole fleet must never do, checked at every sample.
#[derive(Debug, Default)]
pub struct Invariants {
    /// When `sim.mints()` was seen to grow, and by how much.
    pub mints: Vec<(Instant, u64)>,
    last_mints: u64,
    /// Samples where a host's token file held an expired token (or none after the first token).
    pub expired: Vec<String>,
    pub samples: u64,
    /// Every token seen in a token file, and on which hosts.
    pub seen_on: std::collections::HashMap<String, std::collections::BTreeSet<String>>,
    /// Samples where a settled host's file held a token Dhan had already replaced, more than
    /// [`STALE_GRACE`] after the last mint and after Redis came back: unexpired, but dead.
    pub stale: Vec<String>,
    /// Since when the fleet has been quiet enough to ask that of every host.
    quiet_since: Option<Instant>,
    redis_was_up: bool,
}

/// How long after a mint (or Redis's return) every host may take to hold the new token: a
/// pub/sub event is immediate, a re-read comes within a third of the lease.
pub const STALE_GRACE: Duration = Duration::from_millis(1500);

/// The fleet under test.
pub struct FleetStack {
    pub sim: DhanSim,
    pub tg: TelegramSim,
    pub redis: RedisServer,
    pub hosts: Vec<Host>,
    pub inv: Invariants,
    /// The test keeps this true while Redis runs unpaused: the invariants hold only then.
    pub redis_up: bool,
}

impl FleetStack {
    /// `creds[i]`: whether host i has Dhan credentials (false: a follower only).
    pub async fn new(creds: &[bool]) -> Self {
        let sim_cfg = SimConfig {
            token_lifetime: Duration::from_secs(LIFETIME_S),
            mint_cooldown: Duration::from_millis(100),
            ..helpers::sim_config()
        };
        let sim = DhanSim::start(sim_cfg).await.expect("dhan sim");
        let tg = TelegramSim::start(BOT_TOKEN).await.expect("telegram sim");
        tg.add_chat(CHAT);
        let redis = RedisServer::start();
        let hosts = creds.iter().enumerate().map(|(i, &c)| host(&sim, &tg, &redis, i + 1, c)).collect();
        let inv = Invariants { last_mints: sim.mints(), redis_was_up: true, ..Invariants::default() };
        Self { sim, tg, redis, hosts, inv, redis_up: true }
    }

    pub fn start_all(&mut self) {
        for h in &mut self.hosts {
            h.start();
        }
    }

    /// The lease holder's node name, straight from Redis (`None`: free or Redis not answering).
    pub fn leader(&self) -> Option<String> {
        let client = redis::Client::open(self.redis.url()).ok()?;
        let mut c = client.get_connection_with_timeout(Duration::from_millis(300)).ok()?;
        c.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
        let v: Option<String> = redis::cmd("GET").arg(LEASE_KEY).query(&mut c).ok()?;
        v.map(|h| h.split_once('#').map_or(h.as_str(), |(n, _)| n).to_string())
    }

    pub fn host(&mut self, name: &str) -> &mut Host {
        self.hosts.iter_mut().find(|h| h.name == name).expect("host")
    }

    /// One sample of the invariants.
    pub fn sample(&mut self) {
        self.inv.samples += 1;
        let mints = self.sim.mints();
        if mints != self.inv.last_mints {
            self.inv.mints.push((Instant::now(), mints - self.inv.last_mints));
            self.inv.last_mints = mints;
            self.inv.quiet_since = Some(Instant::now());
        }
        if self.redis_up && !self.inv.redis_was_up {
            self.inv.quiet_since = Some(Instant::now());
        }
        self.inv.redis_was_up = self.redis_up;
        if mints == 0 || !self.redis_up {
            return;
        }
        let t = now();
        for h in &self.hosts {
            if let Some((t, _)) = h.token() {
                self.inv.seen_on.entry(t).or_default().insert(h.name.clone());
            }
        }
        for h in self.hosts.iter().filter(|h| h.settled()) {
            match h.token() {
                Some((_, exp)) if exp > t => {}
                Some(_) => self.inv.expired.push(format!("{} at {t}: expired token in the file", h.name)),
                None => {} // not written yet (a new host), or between the write and the rename
            }
        }
        let quiet = self.inv.quiet_since.is_none_or(|q| q.elapsed() > STALE_GRACE);
        if let (true, Some(live)) = (quiet, self.sim.active_token()) {
            for h in self.hosts.iter().filter(|h| h.started.is_some_and(|s| s.elapsed() > STALE_GRACE.max(START_GRACE)))
            {
                if h.running() && h.token().is_some_and(|(tok, _)| tok != live) {
                    self.inv.stale.push(format!("{}: a token Dhan already replaced", h.name));
                }
            }
        }
    }

    /// Polls `check` (sampling the invariants) until it holds; panics after `limit`.
    pub async fn until<T>(&mut self, what: &str, limit: Duration, mut check: impl FnMut(&mut Self) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            self.sample();
            if let Some(v) = check(self) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The token every running host's file holds, once they all agree on Dhan's live token.
    pub fn all_on_live_token(&self) -> Option<String> {
        let live = self.sim.active_token()?;
        self.hosts.iter().filter(|h| h.running()).all(|h| h.token().is_some_and(|(t, _)| t == live)).then_some(live)
    }

    /// Two mints closer than half a rotation apart: two keepers minted for one rotation.
    pub fn double_mints(&self) -> usize {
        let spacing = Duration::from_secs((LIFETIME_S - REFRESH_BEFORE_S) / 2);
        let within = self.inv.mints.windows(2).filter(|w| w[1].0.duration_since(w[0].0) < spacing).count();
        within + self.inv.mints.iter().filter(|(_, n)| *n > 1).count()
    }

    /// Stops every keeper, then the audit: no secret, no access token in any log or message.
    pub async fn stop_all(&mut self) {
        for h in &mut self.hosts {
            assert_eq!(h.stop().await, 0, "{} exits 0 on SIGTERM", h.name);
        }
        let tokens = self.sim.all_tokens();
        let extra: Vec<&str> = tokens.iter().map(String::as_str).chain([FLEET_KEY]).collect();
        for h in &self.hosts {
            crate::daemon::assert_clean(&h.logs, &extra);
        }
        for (_, m) in self.tg.all_sent() {
            crate::daemon::assert_clean(&m.to_string(), &extra);
        }
    }
}

fn host(sim: &DhanSim, tg: &TelegramSim, redis: &RedisServer, i: usize, creds: bool) -> Host {
    let http_port = free_port();
    let name = format!("box-{i}");
    let ws = Workspace::with(sim, |m| {
        m.extend(quick_keys(tg, http_port));
        for (k, v) in [
            ("refresh_before", json!(format!("{REFRESH_BEFORE_S}s"))),
            ("alert_before", json!("3s")),
            ("final_alert_before", json!("1s")),
            ("dhan_timeout", json!("800ms")),
            ("redis_url", json!(redis.url())),
            ("node_name", json!(name)),
            ("fleet_key", json!(FLEET_KEY)),
            ("fleet_lease", json!(humantime::format_duration(LEASE).to_string())),
        ] {
            m.insert(k.into(), v);
        }
        if !creds {
            for k in ["pin", "totp_secret", "api_key", "api_secret"] {
                m.remove(k);
            }
        }
    });
    Host { name, ws, http_port, daemon: None, started: None, logs: String::new() }
}
