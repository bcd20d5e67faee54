//! What several accounts cost: one daemon keeping five accounts beside one keeping one account,
//! measured at the same time on the same machine, so the ratio holds whatever else loads it.
//!
//! `cargo bench -p dhan-keeper --bench accounts` (set `DHAN_BENCH_IDLE_SECS` to change the 60 s
//! idle window). Both release daemons run as child processes against one Dhan simulator serving
//! five clients and their own Telegram simulator. Idle CPU is `perf stat -e task-clock` on each
//! process over the same window (the `/proc` tick counters overstate a process that wakes
//! rarely); without `perf`, the nanosecond `schedstat` of every thread. Nothing here is a test:
//! it measures and prints, and never fails on a number.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{cpu_time, kib, rss_kib, terminate, wait_until, write_config};
use dhan_sim::{DhanSim, SimClient, SimConfig, TelegramSim};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const BOT_TOKEN: &str = "7000000001:AAbenchBotTokenNotARealOne_abcdefghij";
const CHAT: i64 = 424_242;
const FAMILY: [&str; 5] = ["me", "mom", "dad", "huf", "wife"];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let idle =
        Duration::from_secs(std::env::var("DHAN_BENCH_IDLE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60));
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_dhan-keeper"));
    let base = SimConfig { mint_cooldown: Duration::ZERO, ..SimConfig::default() };
    // Six clients: the single account's and the family's five (two keepers of one client would
    // kill each other's tokens).
    let extra: Vec<SimClient> = (2..=6).map(|i| SimClient::new(&format!("100000000{i}"))).collect();
    let sim = DhanSim::start(SimConfig { extra_clients: extra.clone(), ..base.clone() }).await?;

    let one_dir = tempfile::tempdir()?;
    let five_dir = tempfile::tempdir()?;
    let tg_one = TelegramSim::start(BOT_TOKEN).await?;
    let tg_five = TelegramSim::start(BOT_TOKEN).await?;
    for tg in [&tg_one, &tg_five] {
        tg.add_chat(CHAT);
    }
    let first = json!({"client_id": base.client_id, "pin": base.pin, "totp_secret": base.totp_secret});
    write_config(one_dir.path(), &shared(&sim, &tg_one, first.as_object().cloned().unwrap_or_default()))?;
    let mut accounts = vec![
        json!({"label": FAMILY[0], "client_id": base.client_id, "pin": base.pin, "totp_secret": base.totp_secret}),
    ];
    for (label, c) in FAMILY[1..].iter().zip(&extra) {
        accounts.push(json!({"label": label, "client_id": c.client_id, "pin": c.pin, "totp_secret": c.totp_secret}));
    }
    let mut family = serde_json::Map::new();
    family.insert("accounts".into(), Value::Array(accounts));
    write_config(five_dir.path(), &shared(&sim, &tg_five, family))?;

    let one = spawn(&bin, one_dir.path())?;
    let five = spawn(&bin, five_dir.path())?;
    let (one_pid, five_pid) = (one.id().unwrap_or_default(), five.id().unwrap_or_default());
    // Started: every account has its token, and each bot is in its long poll.
    wait_until(Duration::from_secs(30), || {
        let files = FAMILY.iter().filter(|l| five_dir.path().join(format!("dhan_token.{l}.json")).exists()).count();
        (one_dir.path().join("dhan_token.json").exists()
            && files == FAMILY.len()
            && tg_one.parked_polls() > 0
            && tg_five.parked_polls() > 0)
            .then_some(())
    })
    .await?;
    let rss_start = (rss_kib(one_pid), rss_kib(five_pid));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu_one, cpu_five, how) = idle_cpu(one_pid, five_pid, idle).await;
    let rss_idle = (rss_kib(one_pid), rss_kib(five_pid));
    terminate(one).await?;
    terminate(five).await?;

    let per_min = |d: Duration| d.as_secs_f64() * 60.0 / idle.as_secs_f64();
    println!("\n| measure | 1 account | 5 accounts | ratio | target |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| resident memory after start | {} | {} | {:.2}× | 5 accounts ≤ 10 MiB |",
        kib(rss_start.0),
        kib(rss_start.1),
        rss_start.1 as f64 / rss_start.0.max(1) as f64
    );
    println!(
        "| resident memory after {} s idle | {} | {} | {:.2}× | 5 accounts ≤ 10 MiB |",
        idle.as_secs(),
        kib(rss_idle.0),
        kib(rss_idle.1),
        rss_idle.1 as f64 / rss_idle.0.max(1) as f64
    );
    println!(
        "| CPU while idle ({how}) | {:.4} s/min | {:.4} s/min | {:.2}× | ≤ 2× |",
        per_min(cpu_one),
        per_min(cpu_five),
        cpu_five.as_secs_f64() / cpu_one.as_secs_f64().max(1e-9)
    );
    Ok(())
}

/// The keys both daemons share: the simulators, market hours off, a long poll.
fn shared(sim: &DhanSim, tg: &TelegramSim, mut with: serde_json::Map<String, Value>) -> Value {
    let common = json!({
        "dhan_auth_url": sim.url(), "dhan_api_url": sim.url(),
        "telegram_bot_token": BOT_TOKEN, "telegram_chat_id": CHAT.to_string(), "telegram_api_url": tg.url(),
        "http_listen": "127.0.0.1:0", "market_hours": "off", "mint_cooldown": "1ms",
    });
    if let Value::Object(c) = common {
        with.extend(c);
    }
    Value::Object(with)
}

fn spawn(bin: &Path, dir: &Path) -> anyhow::Result<Child> {
    Ok(Command::new(bin)
        .arg("run")
        .arg("--config")
        .arg(dir.join("dhan_config.json"))
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?)
}

/// CPU each process used over the same `idle` window, and how it was measured.
async fn idle_cpu(a: u32, b: u32, idle: Duration) -> (Duration, Duration, &'static str) {
    let secs = idle.as_secs().to_string();
    let perf = |pid: u32| {
        Command::new("perf")
            .args(["stat", "-x", ",", "-e", "task-clock", "-p", &pid.to_string(), "--", "sleep", &secs])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
    };
    let (sa, sb) = (cpu_time(a), cpu_time(b));
    let started = Instant::now();
    if let (Ok(pa), Ok(pb)) = tokio::join!(perf(a), perf(b))
        && let (Some(ta), Some(tb)) = (task_clock(&pa.stderr), task_clock(&pb.stderr))
    {
        return (ta, tb, "perf task-clock");
    }
    // No perf (or not allowed): the rest of the window, then the schedulers' own counters.
    tokio::time::sleep(idle.saturating_sub(started.elapsed())).await;
    (cpu_time(a).saturating_sub(sa), cpu_time(b).saturating_sub(sb), "schedstat")
}

/// The task-clock milliseconds from `perf stat -x ,` output.
fn task_clock(stderr: &[u8]) -> Option<Duration> {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().find(|l| l.contains("task-clock"))?;
    let ms: f64 = line.split(',').next()?.trim().parse().ok()?;
    Some(Duration::from_secs_f64(ms / 1000.0))
}
