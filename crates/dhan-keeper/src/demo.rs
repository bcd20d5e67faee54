//! `dhan-keeper demo`: the whole daemon against in-process simulators, as a readable transcript.
//!
//! Needs no credentials and no network. A simulated Dhan (tokens live 30 s instead of 24 h, a
//! mint window of a second instead of 2 minutes) and a simulated Telegram listen on 127.0.0.1;
//! the real daemon (`app::start`, the same code as `dhan-keeper run`) keeps the token alive while a
//! scripted trader talks to the bot, a trading program fetches the token over HTTP, a stranger
//! pokes the bot, Dhan has an outage and someone mints a token elsewhere. A watcher samples the
//! token file throughout; the demo exits 0 only if it never held an expired token and every step
//! behaved. `--interactive` starts the same stage and lets the newcomer be the trader.
//!
//! It must pass every time, on a loaded machine too, so nothing in it depends on timing luck:
//! - every wait is for a condition (a message, a file, a clock instant), never a fixed sleep;
//! - the daemon keeps 3 s between its mints while the simulated Dhan only asks for 1 s, so the
//!   simulator's window can never refuse the daemon (a refusal means "come back in 2 minutes",
//!   which would stall a 30-second story); the Dhan-Web mint clears the simulator's window for
//!   the same reason, whichever way the simulator models Web mints;
//! - bot messages are printed before each heading and each line of the script, so a message
//!   never lands under the wrong heading.
//!
//! This module lives in the binary, so the library never depends on the simulators.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dhan_keeper::app;
use dhan_keeper::clock::{SharedClock, SystemClock};
use dhan_keeper::config::Config;
use dhan_keeper::ist;
use dhan_keeper::state::StateFile;
use dhan_keeper::token::TokenStore;
use dhan_sim::{DhanSim, Fault, SimConfig, TelegramSim};
use tokio_util::sync::CancellationToken;

const LIFETIME: Duration = Duration::from_secs(30);
/// The daemon's spacing between mints (`mint_cooldown`).
const COOLDOWN: Duration = Duration::from_secs(3);
/// The simulated Dhan's mint window: shorter than [`COOLDOWN`] by more than any request takes.
const SIM_WINDOW: Duration = Duration::from_secs(1);
const TRADER: i64 = 42_4242_4242;
const STRANGER: i64 = 66_6666_6666;
const BOT_TOKEN: &str = "7000000001:AAdemoBotTokenNotARealOne_abcdefghij";
const HTTP_TOKEN: &str = "demo-http-token-0123456789abcdef";
/// The longest any one step may take; the slowest (a scheduled rotation) needs about 10 s.
const STEP_LIMIT: Duration = Duration::from_secs(60);

/// Runs the demo; exits 0 when every step behaved as it should.
pub async fn run(interactive: bool) -> ExitCode {
    let result = if interactive { interactive::play().await } else { tour().await };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the transcript with a clock since the start, and the bot's messages in order.
struct Transcript {
    start: Instant,
    tg: Arc<TelegramSim>,
    /// How many messages of each chat ([`TRADER`], [`STRANGER`]) were printed.
    seen: Mutex<[usize; 2]>,
}

impl Transcript {
    fn print(&self, who: &str, text: &str) {
        let mut out = std::io::stdout().lock();
        let mut lines = text.lines();
        // A closed stdout (`demo | head`) must not abort the demo: output is best effort.
        let _ =
            writeln!(out, "[{:>5.1}s] {who} {}", self.start.elapsed().as_secs_f64(), lines.next().unwrap_or_default());
        for l in lines {
            let _ = writeln!(out, "{:>11}{l}", "");
        }
        let _ = out.flush();
    }

    /// Prints the bot's messages not printed yet.
    fn flush(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for (i, chat) in [TRADER, STRANGER].into_iter().enumerate() {
            let sent = self.tg.sent(chat);
            for m in sent.iter().skip(seen[i]) {
                let mut text = m["text"].as_str().unwrap_or_default().to_string();
                let buttons: Vec<String> = m["reply_markup"]["inline_keyboard"][0]
                    .as_array()
                    .map(|row| row.iter().filter_map(|b| b["text"].as_str()).map(|b| format!("[{b}]")).collect())
                    .unwrap_or_default();
                if !buttons.is_empty() {
                    text.push('\n');
                    text.push_str(&buttons.join(" "));
                }
                self.print(if chat == TRADER { "🤖" } else { "🤖→stranger" }, &text);
            }
            seen[i] = sent.len();
        }
    }

    /// A line of the script, after whatever the bot said before it.
    fn line(&self, who: &str, text: &str) {
        self.flush();
        self.print(who, text);
    }

    fn step(&self, what: &str) {
        self.flush();
        println!();
        self.print("▶", what);
    }
}

struct Stage {
    t: Arc<Transcript>,
    tg: Arc<TelegramSim>,
    sim: DhanSim,
    cfg: Config,
    clock: SharedClock,
}

impl Stage {
    /// The trader sends `text` and waits for a reply that contains `expect`.
    async fn say(&self, text: &str, expect: &str) -> anyhow::Result<()> {
        let before = self.tg.sent(TRADER).len();
        self.t.line("👤", text);
        self.tg.inject_text(TRADER, TRADER, text);
        self.wait_for(&format!("the reply to {text}"), || self.sent_since(before, expect)).await
    }

    fn sent_since(&self, before: usize, needle: &str) -> bool {
        self.tg.sent(TRADER).iter().skip(before).any(|m| m["text"].as_str().is_some_and(|s| s.contains(needle)))
    }

    async fn wait_for(&self, what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + STEP_LIMIT;
        while !done() {
            if Instant::now() > deadline {
                self.t.flush();
                anyhow::bail!("timed out after {}s waiting for {what}", STEP_LIMIT.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(())
    }

    fn count(&self, needle: &str) -> usize {
        self.tg.sent(TRADER).iter().filter(|m| m["text"].as_str().is_some_and(|s| s.contains(needle))).count()
    }

    /// When the daemon will mint again at the earliest: its last mint (from its state file) plus
    /// its cooldown.
    fn daemon_may_mint_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let last = StateFile::peek(&self.cfg.token_file)?.last_mint_at?;
        let cooldown = chrono::Duration::from_std(self.cfg.mint_cooldown).unwrap_or_default();
        Some(last.with_timezone(&chrono::Utc) + cooldown)
    }
}

/// Starts the simulators and the daemon; prints the introduction.
struct Started {
    stage: Stage,
    running: app::Running,
    http: std::net::SocketAddr,
    shutdown: CancellationToken,
    printer: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start() -> anyhow::Result<Started> {
    let sim_cfg = SimConfig { token_lifetime: LIFETIME, mint_cooldown: SIM_WINDOW, ..SimConfig::default() };
    let sim = DhanSim::start(sim_cfg.clone()).await?;
    let tg = Arc::new(TelegramSim::start(BOT_TOKEN).await?);
    tg.add_chat(TRADER);
    tg.add_chat(STRANGER);
    let t = Arc::new(Transcript { start: Instant::now(), tg: Arc::clone(&tg), seen: Mutex::new([0, 0]) });
    // A private (0700) temp dir, removed when the demo ends.
    let dir = tempfile::Builder::new().prefix("dhan-keeper-demo-").tempdir()?;
    let cfg = write_config(dir.path(), &sim, &tg, &sim_cfg)?;
    println!("dhan-keeper demo: the real daemon against a simulated Dhan ({}) and Telegram ({}).", sim.url(), tg.url());
    println!(
        "Tokens live {} s here instead of 24 h and are rotated {} s before expiry; the daemon mints at most once every {} s.",
        LIFETIME.as_secs(),
        cfg.refresh_before.as_secs(),
        COOLDOWN.as_secs()
    );
    println!("👤 = the trader on Telegram, 🤖 = the bot, ⚙ = what happens behind the scenes.");

    let clock: SharedClock = Arc::new(SystemClock);
    let shutdown = CancellationToken::new();
    t.step("dhan-keeper run (no token yet: it mints one at once)");
    let running = app::start(cfg.clone(), Arc::clone(&clock), shutdown.clone()).await?;
    let http = running.http.ok_or_else(|| anyhow::anyhow!("the demo config listens on HTTP"))?;
    let printer = tokio::spawn(print_bot(Arc::clone(&t), shutdown.clone()));
    let stage = Stage { t, tg, sim, cfg, clock };
    stage.wait_for("the first token", || stage.count("New Dhan token") >= 1).await?;
    Ok(Started { stage, running, http, shutdown, printer, _dir: dir })
}

async fn tour() -> anyhow::Result<()> {
    let Started { stage, running, http, shutdown, printer, _dir } = start().await?;
    let t = Arc::clone(&stage.t);
    let clock = Arc::clone(&stage.clock);
    let cfg = stage.cfg.clone();
    let gap = Arc::new(AtomicBool::new(false));
    let watcher =
        tokio::spawn(watch_file(cfg.token_file.clone(), Arc::clone(&clock), Arc::clone(&gap), shutdown.clone()));

    t.step("The trader checks in");
    stage.say("/start", "dhan-keeper").await?;
    stage.say("/status", "Expires").await?;
    stage.say("/account", "Funds").await?;
    // Right after a mint the answer is "wait"; either answer is part of the story.
    let before = stage.tg.sent(TRADER).len();
    stage.say("/refresh", "").await?;
    stage
        .wait_for("the /refresh answer", || {
            stage.sent_since(before, "Getting a new token") || stage.sent_since(before, "⏳")
        })
        .await?;
    if stage.sent_since(before, "⏳") {
        let at = stage.daemon_may_mint_at();
        stage.wait_for("the end of the daemon's cooldown", || at.is_none_or(|at| clock.now() >= at)).await?;
        stage.say("/refresh", "Getting a new token").await?;
    }
    stage.wait_for("the manual rotation", || stage.count("New Dhan token") >= 2).await?;

    t.step("A trading program fetches the token from the loopback endpoint");
    let client = reqwest::Client::new();
    let url = format!("http://{http}/token");
    let denied = client.get(&url).send().await?.status();
    t.line("⚙", &format!("GET /token without the bearer → {denied}"));
    let resp = client.get(&url).bearer_auth(HTTP_TOKEN).send().await?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await?;
    t.line(
        "⚙",
        &format!(
            "GET /token with the bearer → {status}: a token for client {}, expiring {} (the same as dhan_token.json)",
            body["client_id"].as_str().unwrap_or("?"),
            body["expiry_time"].as_str().unwrap_or("?")
        ),
    );
    if denied != 401 || status != 200 {
        anyhow::bail!("the HTTP endpoint answered {denied} / {status}");
    }

    t.step("A stranger finds the bot and presses /refresh");
    t.line("👤", &format!("(chat {STRANGER}) /refresh"));
    let mints = stage.sim.mints();
    stage.tg.inject_text(STRANGER, STRANGER, "/refresh");
    stage.wait_for("the admin notice", || stage.count("unknown chat") >= 1).await?;
    t.line("⚙", &format!("the stranger got {} messages; Dhan saw no new mint", stage.tg.sent(STRANGER).len()));
    if stage.sim.mints() != mints || !stage.tg.sent(STRANGER).is_empty() {
        anyhow::bail!("a stranger got through");
    }

    t.step("Dhan has an outage over the next scheduled rotation (3 failed mints, then it recovers)");
    stage.sim.inject("generateAccessToken", Fault::Status { status: 500 }, 2);
    stage.sim.inject("generateAccessToken", Fault::Drop, 1);
    stage.wait_for("the rotation after the outage", || stage.count("New Dhan token") >= 3).await?;

    t.step("Someone generates a token on Dhan Web: ours is revoked");
    stage.sim.mint_elsewhere();
    // Whether or not a Web mint opens Dhan's window, the demo's Dhan forgets it: on real Dhan the
    // daemon would wait out the 2 minutes, which a 30-second story cannot show.
    stage.sim.reset_cooldown();
    t.line("⚙", "Dhan now rejects the daemon's token; the daemon checks its token every 2 s");
    stage.wait_for("the replacement", || stage.count("New Dhan token") >= 4).await?;

    t.step("Nothing to do: wait for a scheduled rotation before expiry");
    stage.wait_for("a scheduled rotation", || stage.count("New Dhan token") >= 5).await?;
    stage.say("/status", "Expires").await?;

    shutdown.cancel();
    running.join().await;
    let _ = printer.await;
    let _ = watcher.await;
    let saved = TokenStore::new(&cfg.token_file).load()?.ok_or_else(|| anyhow::anyhow!("no token at the end"))?;
    t.step("Summary");
    t.line(
        "⚙",
        &format!(
            "{} tokens minted, {} Dhan requests, {} bot messages. The token file always held a valid token: {}.\n\
             Final token expires {} ({} left), file mode {:o}.",
            stage.sim.mints(),
            stage.sim.total_calls(),
            stage.tg.sent(TRADER).len(),
            if gap.load(Ordering::Relaxed) { "NO" } else { "yes" },
            ist::human(&saved.expires_at),
            ist::human_duration(saved.remaining(clock.now())),
            file_mode(&cfg.token_file)
        ),
    );
    if gap.load(Ordering::Relaxed) {
        anyhow::bail!("the token file held an expired token at some point");
    }
    println!("\nYour turn: `dhan-keeper demo --interactive` lets you be the trader.");
    println!("Then: `dhan-keeper init`, fill in the config, `dhan-keeper check` and `dhan-keeper run` (README).");
    Ok(())
}

async fn print_bot(t: Arc<Transcript>, shutdown: CancellationToken) {
    loop {
        t.flush();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

async fn watch_file(path: std::path::PathBuf, clock: SharedClock, gap: Arc<AtomicBool>, shutdown: CancellationToken) {
    let store = TokenStore::new(path);
    loop {
        if let Ok(Some(token)) = store.load()
            && token.is_expired(clock.now())
        {
            gap.store(true, Ordering::Relaxed);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

fn write_config(dir: &Path, sim: &DhanSim, tg: &TelegramSim, s: &SimConfig) -> anyhow::Result<Config> {
    let path = dir.join("dhan_config.json");
    // Rotation 20 s before a 30 s expiry leaves room for the outage's three failed mints, 3 s
    // apart, with 10 s to spare before the token would lapse.
    let body = serde_json::json!({
        "client_id": s.client_id, "pin": s.pin, "totp_secret": s.totp_secret,
        "api_key": s.api_key, "api_secret": s.api_secret,
        "dhan_auth_url": sim.url(), "dhan_api_url": sim.url(),
        "telegram_bot_token": BOT_TOKEN, "telegram_chat_id": TRADER.to_string(),
        "telegram_api_url": tg.url(),
        "http_listen": "127.0.0.1:0", "http_token": HTTP_TOKEN,
        "market_hours": "off",
        "refresh_before": "20s", "alert_before": "16s", "final_alert_before": "5s",
        "mint_cooldown": format!("{}s", COOLDOWN.as_secs()),
        "retry_min": "500ms", "retry_max": "2s", "verify_every": "2s", "reprobe_after": "1s",
    });
    std::fs::write(&path, body.to_string())?;
    set_private(&path)?;
    Ok(Config::load_with_env(Some(path), &|_| None)?)
}

#[cfg(unix)]
fn set_private(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_private(_: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn file_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).unwrap_or(0)
}

#[cfg(not(unix))]
fn file_mode(_: &Path) -> u32 {
    0
}

mod interactive;
#[cfg(test)]
mod tests;
