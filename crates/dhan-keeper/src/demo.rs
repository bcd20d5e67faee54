//! `dhan-keeper demo`: the core flows against an in-process simulator, narrated.
//!
//! Needs no credentials and no network: a simulated Dhan listens on 127.0.0.1 with tokens that
//! live 40 s and a 5 s mint cooldown, and a temp dir holds the config and the token file. This
//! module lives in the binary, not the library, so the library never depends on the simulator.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dhan_keeper::clock::{Clock, SystemClock};
use dhan_keeper::config::Config;
use dhan_keeper::dhan::DhanError;
use dhan_keeper::mint::mint_and_save;
use dhan_keeper::token::{Token, TokenSource, TokenStore};
use dhan_keeper::{account, cli, ist};
use dhan_sim::{DhanSim, SimConfig};

const LIFETIME: Duration = Duration::from_secs(40);
const COOLDOWN: Duration = Duration::from_secs(5);

struct Narrator(Instant);

impl Narrator {
    fn step(&self, what: &str) {
        println!("\n[{:>5.1}s] ▶ {what}", self.0.elapsed().as_secs_f64());
    }

    fn say(&self, text: &str) {
        for line in text.lines() {
            println!("          {line}");
        }
    }
}

/// Runs the demo; exits 0 when every step behaved as the real service would.
pub async fn run() -> ExitCode {
    match tour().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn tour() -> anyhow::Result<()> {
    let n = Narrator(Instant::now());
    let sim_cfg = SimConfig { token_lifetime: LIFETIME, mint_cooldown: COOLDOWN, ..SimConfig::default() };
    let sim = DhanSim::start(sim_cfg.clone()).await?;
    // A private (0700) temp dir, removed when the demo ends.
    let dir = tempfile::Builder::new().prefix("dhan-keeper-demo-").tempdir()?;
    let cfg = write_config(dir.path(), &sim, &sim_cfg)?;
    println!("dhan-keeper demo: a simulated Dhan on {} (no credentials, no network).", sim.url());
    println!(
        "Tokens live {} s here instead of 24 h; Dhan's 2-minute mint limit is {} s.",
        LIFETIME.as_secs(),
        COOLDOWN.as_secs()
    );

    let clock = SystemClock;
    let client = cli::dhan_client(&cfg)?;
    let store = TokenStore::new(&cfg.token_file);
    let (Some(pin), Some(totp)) = (&cfg.pin, &cfg.totp_secret) else {
        anyhow::bail!("the demo config has no PIN or TOTP secret");
    };

    n.step("dhan-keeper check: reach Dhan and compare clocks");
    let sent_at = clock.now();
    let probe = client.probe_api().await?;
    let offset = probe.clock_offset_secs(sent_at).unwrap_or(0.0);
    n.say(&format!("✅ Dhan answered in {} ms; clock offset {offset:+.1} s (TOTP is safe)", probe.rtt.as_millis()));

    n.step("dhan-keeper refresh: mint a token with TOTP + PIN");
    let code = totp.code_for_submission(clock.now());
    n.say(&format!("TOTP code ●●●●●● with {} s left in its window (codes are never logged)", code.secs_left));
    let token = mint_and_save(&client, pin, totp, &store, &clock).await?;
    n.say(&format!(
        "✅ saved {} (mode {:o}), expires {} — in {}",
        store.path().display(),
        file_mode(store.path()),
        ist::human(&token.expires_at),
        ist::human_duration(token.remaining(clock.now()))
    ));
    n.say(&format!(
        "expiry_time {:?} — the prototype's naive IST field, unchanged",
        ist::naive_string(&token.expires_at)
    ));

    n.step("/account: funds, holdings, positions with the new token");
    let funds = client.fund_limit(&token.access_token).await?;
    let holdings = client.holdings(&token.access_token).await?;
    let positions = client.positions(&token.access_token).await?;
    for block in account::summary(&funds, &holdings, &positions, 3) {
        n.say(&block);
    }

    n.step("refresh again at once: Dhan's one-mint-per-window rule");
    let code = totp.code_for_submission(clock.now());
    match client.generate_access_token(pin, &code.digits).await {
        Err(e @ DhanError::MintCooldown { .. }) => n.say(&format!("⏳ {e} (HTTP 200 with status:error, classified)")),
        other => anyhow::bail!("expected the cooldown, got {other:?}"),
    }

    n.step("someone mints a token elsewhere (Dhan Web, another script)");
    sim.mint_elsewhere();
    match client.profile(&token.access_token).await {
        Err(e @ DhanError::AuthFailed { .. }) => n.say(&format!("❌ {e}")),
        other => anyhow::bail!("expected the token to be dead, got {other:?}"),
    }
    n.say("→ mint a replacement once the cooldown allows");
    tokio::time::sleep(COOLDOWN).await;
    let token = mint_and_save(&client, pin, totp, &store, &clock).await?;
    n.say(&format!("✅ new token, expires {}", ist::human(&token.expires_at)));

    n.step("rotate before expiry: wait until 30 s are left, then replace the token");
    let wait = (token.remaining(clock.now()) - chrono::Duration::seconds(30)).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
    // Renewal first (no cooldown, no TOTP); Dhan documents it for web tokens only, so fall back.
    let fresh = match client.renew_token(&token.access_token).await {
        Ok(renewed) => {
            let fresh = Token::from_minted(renewed, TokenSource::Renew, clock.now());
            store.save(&fresh)?;
            fresh
        }
        Err(e) => {
            n.say(&format!("RenewToken: {e}"));
            mint_and_save(&client, pin, totp, &store, &clock).await?
        }
    };
    let old_dead = matches!(client.profile(&token.access_token).await, Err(DhanError::AuthFailed { .. }));
    client.profile(&fresh.access_token).await?;
    n.say(&format!(
        "✅ rotated with {} left on the old token; new expiry {}; old token dead at Dhan: {old_dead}",
        ist::human_duration(token.remaining(clock.now())),
        ist::human(&fresh.expires_at)
    ));

    n.step("summary");
    n.say(&format!(
        "Dhan saw {} mints and {} requests in all; the token file always held a whole, valid token.",
        sim.mints(),
        sim.total_calls()
    ));
    n.say("Next: `dhan-keeper check` and `dhan-keeper refresh` against your own config (README).");
    Ok(())
}

fn write_config(dir: &Path, sim: &DhanSim, s: &SimConfig) -> anyhow::Result<Config> {
    let path = dir.join("dhan_config.json");
    let body = serde_json::json!({
        "client_id": s.client_id, "pin": s.pin, "totp_secret": s.totp_secret,
        "api_key": s.api_key, "api_secret": s.api_secret,
        "dhan_auth_url": sim.url(), "dhan_api_url": sim.url(),
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
