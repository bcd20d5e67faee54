//! What both benchmarks need: starting and stopping the release daemon, waiting on a
//! condition, and reading a process's memory and CPU from `/proc`.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::process::Child;

/// Writes `body` as the private (0600) `dhan_config.json` in `dir`.
pub fn write_config(dir: &Path, body: &serde_json::Value) -> anyhow::Result<()> {
    let path = dir.join("dhan_config.json");
    std::fs::write(&path, body.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// SIGTERM, then the time until the process exited.
pub async fn terminate(mut child: Child) -> anyhow::Result<Duration> {
    let pid = child.id().unwrap_or_default();
    let t = Instant::now();
    std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status()?;
    tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;
    Ok(t.elapsed())
}

/// Polls `f` every 200 µs until it yields, for at most `limit`.
pub async fn wait_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// `7.4 MiB`.
pub fn kib(k: u64) -> String {
    format!("{:.1} MiB", k as f64 / 1024.0)
}

/// Resident set size from /proc, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time of every thread of `pid` (nanosecond `schedstat`, not 10 ms ticks).
pub fn cpu_time(pid: u32) -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                total += s.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    Duration::from_nanos(total)
}
