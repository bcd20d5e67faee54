//! The daemon's speed and footprint, measured end to end and printed as a table.
//!
//! `cargo bench -p dhan-keeper --bench daemon` (set `DHAN_BENCH_IDLE_SECS` to shorten the 60 s
//! idle window). The release `dhan-keeper` binary runs as a child process against both simulators
//! on 127.0.0.1, exactly as `dhan-keeper run` would against Dhan and Telegram. Nothing here is a
//! test: it measures and prints, and never fails on a number.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use common::{cpu_time, kib, rss_kib, terminate, wait_until};
use dhan_keeper::clock::{Clock, SystemClock};
use dhan_keeper::secret::Secret;
use dhan_keeper::token::{Token, TokenSource, TokenStore};
use dhan_sim::{DhanSim, SimConfig, TelegramSim};
use tokio::process::{Child, Command};

const BOT_TOKEN: &str = "7000000001:AAbenchBotTokenNotARealOne_abcdefghij";
const HTTP_TOKEN: &str = "bench-http-token-0123456789abcdef";
const CHAT: i64 = 424_242;
const ROUNDS: usize = 200;
const ROTATIONS: usize = 20;
const STARTS: usize = 7;

struct Row {
    what: String,
    value: String,
    target: &'static str,
    prototype: &'static str,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let idle =
        Duration::from_secs(std::env::var("DHAN_BENCH_IDLE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60));
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_dhan-keeper"));
    let sim_cfg = SimConfig { mint_cooldown: Duration::ZERO, ..SimConfig::default() };
    let sim = DhanSim::start(sim_cfg.clone()).await?;
    let tg = TelegramSim::start(BOT_TOKEN).await?;
    tg.add_chat(CHAT);
    let dir = tempfile::tempdir()?;
    let marker = dir.path().join("hook-ran");
    write_config(dir.path(), &sim, &tg, &sim_cfg, &marker)?;
    let mut rows = Vec::new();

    // A saved, live token, so every start checks it with /v2/profile and reuses it.
    let client = dhan_keeper::dhan::DhanClient::new(
        sim.url().parse()?,
        sim.url().parse()?,
        &sim_cfg.client_id,
        Duration::from_secs(5),
    )?;
    let code = sim.totp_now().map(|c| c.0).unwrap_or_default();
    let minted = client.generate_access_token(&Secret::new(sim_cfg.pin.clone()), &code).await?;
    TokenStore::new(dir.path().join("dhan_token.json")).save(&Token::from_minted(
        minted,
        TokenSource::Totp,
        SystemClock.now(),
    ))?;

    // Start-up and shutdown, several times.
    let (mut to_poll, mut to_checked, mut to_exit) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..STARTS {
        let calls_before = tg.call_log().len();
        let started = wall();
        let child = spawn(&bin, dir.path())?;
        let first_poll = wait_until(Duration::from_secs(10), || {
            tg.call_log().into_iter().skip(calls_before).find(|(m, _)| m == "getupdates").map(|(_, t)| t)
        })
        .await?;
        let checked =
            sim.call_log().into_iter().find(|c| c.route == "profile" && c.received >= started).map(|c| c.received);
        to_poll.push(first_poll.duration_since(started).unwrap_or_default());
        if let Some(c) = checked {
            to_checked.push(c.duration_since(started).unwrap_or_default());
        }
        to_exit.push(terminate(child).await?);
    }
    rows.push(Row {
        what: "start → first getUpdates (median of 7)".into(),
        value: ms(median(&mut to_poll)),
        target: "≤ 20 ms",
        prototype: "260 ms",
    });
    rows.push(Row {
        what: "start → saved token checked (median of 7)".into(),
        value: ms(median(&mut to_checked)),
        target: "–",
        prototype: "–",
    });
    rows.push(Row {
        what: "SIGTERM → exit (median of 7)".into(),
        value: ms(median(&mut to_exit)),
        target: "≤ 300 ms",
        prototype: "10 s",
    });

    // The long-running daemon for the rest.
    let log: Log = Default::default();
    let child = spawn_logging(&bin, dir.path(), Some(log.clone()))?;
    let pid = child.id().unwrap_or_default();
    wait_until(Duration::from_secs(10), || (tg.parked_polls() > 0).then_some(())).await?;
    let rss_start = rss_kib(pid);

    for (cmd, what, target, proto) in [
        ("/status", "/status round trip", "p50 ≤ 0.5 ms, p99 ≤ 2 ms", "p50 1.9 ms"),
        ("/account", "/account round trip (3 Dhan calls)", "–", "–"),
    ] {
        let mut times = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let before = tg.sent(CHAT).len();
            let t = Instant::now();
            tg.inject_text(CHAT, CHAT, cmd);
            if !tg.wait_sent(CHAT, before + 1, Duration::from_secs(5)).await {
                anyhow::bail!("no reply to {cmd}");
            }
            times.push(t.elapsed());
        }
        times.sort();
        rows.push(Row {
            what: what.into(),
            value: format!("p50 {} · p99 {} (n={ROUNDS})", ms(times[ROUNDS / 2]), ms(times[ROUNDS * 99 / 100])),
            target,
            prototype: proto,
        });
    }

    // Rotations: mint received by Dhan → token file renamed into place ("new token saved" in the
    // daemon's log) → hook process spawned ("on_refresh started"), minus Dhan's own time.
    let (mut overhead, mut to_file, mut to_hook) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..ROTATIONS {
        let mints = sim.mints();
        let seen = log.lock().map(|l| l.len()).unwrap_or(0);
        tg.inject_text(CHAT, CHAT, "/refresh");
        wait_until(Duration::from_secs(10), || (sim.mints() > mints).then_some(())).await?;
        let (saved, hook) = wait_until(Duration::from_secs(10), || {
            let l = log.lock().ok()?;
            let fresh = &l[seen.min(l.len())..];
            let saved = fresh.iter().find(|(_, line)| line.contains("new token saved"))?.0;
            let hook = fresh.iter().find(|(_, line)| line.contains("on_refresh started"))?.0;
            Some((saved, hook))
        })
        .await?;
        let Some(mint) = sim.call_log().into_iter().rev().find(|c| c.route == "generateAccessToken") else { continue };
        if i == 0 {
            continue; // the first rotation also tries RenewToken once; the rest go straight to minting
        }
        let answered = mint.received + mint.took;
        to_file.push(saved.duration_since(answered).unwrap_or_default());
        to_hook.push(hook.duration_since(saved).unwrap_or_default());
        overhead.push(hook.duration_since(mint.received).unwrap_or_default().saturating_sub(mint.took));
    }
    rows.push(Row {
        what: "rotation overhead: Dhan's answer → file saved → hook spawned (median of 19)".into(),
        value: format!(
            "{} ({} to save with fsync, {} to spawn the hook)",
            ms(median(&mut overhead)),
            ms(median(&mut to_file)),
            ms(median(&mut to_hook))
        ),
        target: "≤ 5 ms",
        prototype: "–",
    });

    // Idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, polls0) = (cpu_time(pid), tg.calls().iter().filter(|c| *c == "getupdates").count());
    let rss_busy = rss_kib(pid);
    tokio::time::sleep(idle).await;
    let (cpu1, polls1) = (cpu_time(pid), tg.calls().iter().filter(|c| *c == "getupdates").count());
    let rss_idle = rss_kib(pid);
    let cpu_per_min = (cpu1.saturating_sub(cpu0)).as_secs_f64() * 60.0 / idle.as_secs_f64();
    rows.push(Row {
        what: "resident memory after start".into(),
        value: kib(rss_start),
        target: "≤ 8 MiB",
        prototype: "48 MiB",
    });
    rows.push(Row {
        what: "resident memory after the runs above".into(),
        value: kib(rss_busy),
        target: "–",
        prototype: "–",
    });
    rows.push(Row {
        what: format!("resident memory after {} s idle", idle.as_secs()),
        value: kib(rss_idle),
        target: "≤ 8 MiB",
        prototype: "–",
    });
    rows.push(Row {
        what: format!("CPU while idle ({} long polls in {} s)", polls1 - polls0, idle.as_secs()),
        value: format!("{cpu_per_min:.4} s per minute"),
        target: "≤ 0.005 s/min",
        prototype: "0.02 s/min",
    });
    terminate(child).await?;
    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    rows.push(Row {
        what: "release binary size (includes the simulators for demo)".into(),
        value: format!("{:.1} MB", size as f64 / 1e6),
        target: "≤ 8 MB",
        prototype: "–",
    });

    print_table(&rows);
    Ok(())
}

/// Wall-clock time, to compare with the simulators' arrival stamps and file modification times.
#[allow(clippy::disallowed_methods)] // measurement, not policy
fn wall() -> SystemTime {
    SystemTime::now()
}

fn write_config(dir: &Path, sim: &DhanSim, tg: &TelegramSim, s: &SimConfig, marker: &Path) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "client_id": s.client_id, "pin": s.pin, "totp_secret": s.totp_secret,
        "dhan_auth_url": sim.url(), "dhan_api_url": sim.url(),
        "telegram_bot_token": BOT_TOKEN, "telegram_chat_id": CHAT.to_string(), "telegram_api_url": tg.url(),
        "http_listen": "127.0.0.1:0", "http_token": HTTP_TOKEN, "market_hours": "off",
        "mint_cooldown": "1ms", "on_refresh": ["touch", marker.display().to_string()],
    });
    common::write_config(dir, &body)
}

fn spawn(bin: &Path, dir: &Path) -> anyhow::Result<Child> {
    spawn_logging(bin, dir, None)
}

/// Log lines with their (microsecond, wall-clock) timestamps.
type Log = std::sync::Arc<std::sync::Mutex<Vec<(SystemTime, String)>>>;

/// Starts the daemon; with `log`, its "token saved" and "hook started" lines are collected.
fn spawn_logging(bin: &Path, dir: &Path, log: Option<Log>) -> anyhow::Result<Child> {
    let filter = if log.is_some() { "warn,dhan_keeper::lifecycle=info,dhan_keeper::hook=debug" } else { "warn" };
    let mut child = Command::new(bin)
        .arg("run")
        .arg("--config")
        .arg(dir.join("dhan_config.json"))
        .current_dir(dir)
        .env("RUST_LOG", filter)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if log.is_some() { Stdio::piped() } else { Stdio::inherit() })
        .kill_on_drop(true)
        .spawn()?;
    if let (Some(log), Some(err)) = (log, child.stderr.take()) {
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let stamp = line.split_whitespace().next().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                if let Some(t) = stamp {
                    log.lock().map(|mut l| l.push((SystemTime::from(t), line))).ok();
                }
            }
        });
    }
    Ok(child)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn print_table(rows: &[Row]) {
    let w = rows.iter().map(|r| r.what.chars().count()).max().unwrap_or(10);
    let v = rows.iter().map(|r| r.value.chars().count()).max().unwrap_or(10);
    println!("\n| {:w$} | {:v$} | target | Python prototype |", "measure", "dhan-keeper");
    println!("| {} | {} | --- | --- |", "-".repeat(w), "-".repeat(v));
    for r in rows {
        println!("| {:w$} | {:v$} | {} | {} |", r.what, r.value, r.target, r.prototype);
    }
}
