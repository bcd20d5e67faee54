//! Harness for end-to-end tests of `dhan-keeper run`: both simulators, a config with
//! seconds-long timings, the real binary as a child process, and waits on observable state
//! (messages, files, counters) instead of sleeps.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dhan_sim::{DhanSim, SimConfig, TelegramSim};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::process::Child;

use crate::helpers::{self, BOT_TOKEN, Workspace};

/// The alert chat (also the admin chat unless a test says otherwise).
pub const CHAT: i64 = 111_111_111;
/// A chat nobody configured.
pub const STRANGER: i64 = 999_999_999;

/// Both simulators and a workspace whose config points at them.
pub struct Stack {
    pub sim: DhanSim,
    pub tg: TelegramSim,
    pub ws: Workspace,
    pub http_port: u16,
}

impl Stack {
    /// Automatic mode, 60 s tokens, fast timings; `edit` adjusts the config.
    pub async fn new(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Self {
        Self::with_sim(SimConfig { token_lifetime: Duration::from_secs(60), ..helpers::sim_config() }, edit).await
    }

    pub async fn with_sim(mut sim_cfg: SimConfig, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Self {
        sim_cfg.mint_cooldown = Duration::from_millis(100);
        let sim = DhanSim::start(sim_cfg).await.expect("dhan sim");
        let tg = TelegramSim::start(BOT_TOKEN).await.expect("telegram sim");
        tg.add_chat(CHAT);
        let http_port = free_port();
        let ws = Workspace::with(&sim, |m| {
            m.extend(quick_keys(&tg, http_port));
            m.insert("refresh_before".into(), json!("5s"));
            m.insert("alert_before".into(), json!("4s"));
            m.insert("final_alert_before".into(), json!("2s"));
            edit(m);
        });
        Self { sim, tg, ws, http_port }
    }

    pub fn start(&self) -> Daemon {
        Daemon::start(&self.ws)
    }

    /// SIGTERM, then the secret audit every daemon test ends with: no configured secret and no
    /// access token Dhan ever issued appears in the daemon's output or in any Telegram message.
    pub async fn stop(&self, d: Daemon) -> (i32, Duration, String) {
        let (code, elapsed, log) = d.stop().await;
        let tokens = self.sim.all_tokens();
        let extra: Vec<&str> = tokens.iter().map(String::as_str).collect();
        assert_clean(&log, &extra);
        for (_, message) in self.tg.all_sent() {
            let text = message["text"].as_str().unwrap_or_default();
            let markup = message["reply_markup"].to_string();
            assert_clean(&format!("{text}\n{markup}"), &extra);
        }
        (code, elapsed, log)
    }

    /// Texts the bot sent to `chat`, in order.
    pub fn texts(&self, chat: i64) -> Vec<String> {
        self.tg.sent(chat).iter().map(|m| m["text"].as_str().unwrap_or_default().to_string()).collect()
    }

    /// Waits for a message to `chat` containing `needle` and returns it (the whole message).
    pub async fn wait_message(&self, chat: i64, needle: &str) -> Value {
        eventually(&format!("a message to {chat} containing {needle:?}"), || {
            self.tg.sent(chat).into_iter().find(|m| m["text"].as_str().is_some_and(|t| t.contains(needle)))
        })
        .await
    }

    /// How many messages to `chat` contain `needle`.
    pub fn count(&self, chat: i64, needle: &str) -> usize {
        self.texts(chat).iter().filter(|t| t.contains(needle)).count()
    }

    /// Sends `text` from `chat` and waits for the first new message to it that contains `needle`.
    pub async fn ask(&self, chat: i64, text: &str, needle: &str) -> String {
        let before = self.tg.sent(chat).len();
        self.tg.inject_text(chat, chat, text);
        let found =
            eventually_or_none(PATIENCE, || self.texts(chat).into_iter().skip(before).find(|t| t.contains(needle)))
                .await;
        found.unwrap_or_else(|| {
            panic!(
                "no reply to {text:?} containing {needle:?}\nmessages: {:#?}\nTelegram calls: {:?}",
                self.texts(chat),
                self.tg.calls()
            )
        })
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// The body of `GET path` on the daemon's loopback endpoint, without credentials.
    pub async fn get(&self, path: &str) -> String {
        reqwest::get(self.http(path)).await.expect(path).text().await.expect("body")
    }

    /// The saved token file, if present and readable.
    pub fn token_file(&self) -> Option<Value> {
        serde_json::from_slice(&std::fs::read(self.ws.token_path()).ok()?).ok()
    }
}

/// The keys every daemon test shares: the Telegram simulator and the alert chat, an HTTP
/// port, no market hours, and retry, check and window timings in milliseconds.
pub fn quick_keys(tg: &TelegramSim, http_port: u16) -> serde_json::Map<String, Value> {
    let keys = json!({
        "telegram_api_url": tg.url(),
        "telegram_chat_id": CHAT.to_string(),
        "http_listen": format!("127.0.0.1:{http_port}"),
        "market_hours": "off",
        "mint_cooldown": "100ms",
        "retry_min": "200ms",
        "retry_max": "1s",
        "verify_every": "1s",
        "reprobe_after": "300ms",
    });
    match keys {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// A port free right now (bind :0, read it, release it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// How long a test waits for something the daemon should do within a few seconds.
const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `check` every 20 ms until it yields a value; fails after 20 s with `what`.
pub async fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    eventually_within(PATIENCE, what, check).await
}

/// [`eventually`] with another limit, for waits the protocol makes long (a TOTP window).
pub async fn eventually_within<T>(limit: Duration, what: &str, check: impl FnMut() -> Option<T>) -> T {
    match eventually_or_none(limit, check).await {
        Some(v) => v,
        None => panic!("timed out waiting for {what}"),
    }
}

/// Polls `check` every 20 ms for up to `limit`.
pub async fn eventually_or_none<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running `dhan-keeper run` child process with its stderr captured.
pub struct Daemon {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    pub fn start(ws: &Workspace) -> Self {
        Self::start_with(ws, &[], &[])
    }

    /// Starts through `wrapper` (e.g. `prlimit --nofile=256:256`) with extra environment.
    pub fn start_with(ws: &Workspace, wrapper: &[&str], env: &[(&str, &str)]) -> Self {
        let bin = env!("CARGO_BIN_EXE_dhan-keeper");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = tokio::process::Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => tokio::process::Command::new(bin),
        };
        cmd.arg("run").arg("--config").arg(ws.config_path()).current_dir(ws.dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("DHAN_KEEPER_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.env("RUST_LOG", "warn,dhan_keeper=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("dhan-keeper starts");
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [child.stderr.take().map(box_reader), child.stdout.take().map(box_reader)].into_iter().flatten() {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    // Shown by the test harness only when the test fails.
                    eprintln!("[daemon] {line}");
                    let mut l = log.lock().expect("log");
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        Self { child, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    fn signal(&self, sig: &str) {
        let status =
            std::process::Command::new("kill").arg(sig).arg(self.pid().to_string()).status().expect("kill runs");
        assert!(status.success(), "kill {sig} failed");
    }

    /// SIGTERM, then waits for the exit; returns the exit code, how long it took, and the log.
    pub async fn stop(mut self) -> (i32, Duration, String) {
        let t = Instant::now();
        self.signal("-TERM");
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("exited within 10 s of SIGTERM")
            .expect("wait");
        let elapsed = t.elapsed();
        // Let the log readers drain what is left.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while Arc::strong_count(&self.log) > 1 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        (status.code().unwrap_or(-1), elapsed, self.log())
    }

    /// kill -9: no chance to clean up.
    pub async fn kill9(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait().await;
    }
}

fn box_reader<R: tokio::io::AsyncRead + Send + Unpin + 'static>(r: R) -> Box<dyn tokio::io::AsyncRead + Send + Unpin> {
    Box::new(r)
}

/// Asserts that none of the configured secrets (nor `extra`, e.g. an access token) appear in `text`.
pub fn assert_clean(text: &str, extra: &[&str]) {
    for s in helpers::ALL_SECRETS.iter().chain(extra) {
        assert!(!s.is_empty() && !text.contains(s), "secret {s:?} leaked in:\n{text}");
    }
}

pub fn expiry_of(file: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(file["expires_at"].as_str().expect("expires_at")).expect("rfc3339").with_timezone(&Utc)
}

#[allow(clippy::disallowed_methods)] // the test checks the daemon against the real wall clock
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

pub fn short_sim(lifetime_secs: u64) -> SimConfig {
    SimConfig { token_lifetime: Duration::from_secs(lifetime_secs), ..helpers::sim_config() }
}

/// Samples the token file until `rotations` new tokens were minted, asserting at every sample
/// that the file holds a token that has not expired: rotation happens before expiry, no gap.
pub async fn watch_without_gap(s: &Stack, rotations: u64) {
    let target = s.sim.mints() + rotations;
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while s.sim.mints() < target {
        let file = s.token_file().expect("the token file is always readable");
        assert!(expiry_of(&file) > now(), "the saved token expired before it was replaced: {file}");
        assert!(std::time::Instant::now() < deadline, "only {} of {target} mints happened", s.sim.mints());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
