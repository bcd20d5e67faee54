//! `dhan-keeper check`: is everything in place? Config, token file, Dhan, and the clock.
//!
//! TOTP codes are only right if this machine's clock is; a clock 40 s off produces codes Dhan
//! refuses. The offset is measured against the `Date` header of Dhan's api host
//! ([`crate::dhan::Probe::clock_offset_secs`]).

use std::process::ExitCode;

use crate::clock::Clock;
use crate::config::Config;
use crate::dhan::DhanError;
use crate::ist;
use crate::token::TokenStore;

use crate::dhan::Probe;

/// Asks Telegram who the bot is. A rejected token fails the check; an unreachable Telegram only
/// warns (the daemon keeps the token alive without it). Returns false on failure.
async fn telegram(cfg: &Config, bot_token: &crate::secret::Secret, chat: i64, admin: i64) -> bool {
    use crate::telegram::{BotClient, TgError};
    let who = format!("alerts to chat {chat}, admin {admin}");
    let client = match BotClient::new(&cfg.telegram_api_url, bot_token) {
        Ok(c) => c,
        Err(e) => {
            println!("⚠️  Telegram    {who}; {e}");
            return true;
        }
    };
    match client.get_me().await {
        Ok(me) => {
            let name = me.username.unwrap_or_default();
            println!("✅ Telegram    bot @{name}, {who} (send /start to @{name} once so it may message you)");
            true
        }
        Err(e @ TgError::Api { code: 401 | 404, .. }) => {
            println!("❌ Telegram    {e}; check telegram_bot_token (BotFather → /mybots → API Token)");
            false
        }
        Err(e) => {
            println!("⚠️  Telegram    {who}; {e}");
            true
        }
    }
}

/// What rotations avoid, and whether the calendar's data runs out soon (a warning, not a failure).
fn calendar(cfg: &Config, clock: &dyn Clock) {
    use crate::config::MarketChoice;
    let segs = match cfg.market_hours {
        None => return println!("   Calendar    market_hours is \"off\": rotations may happen during sessions"),
        Some(MarketChoice::Window(mh)) => {
            return println!(
                "   Calendar    market_hours is the fixed window {}-{} IST, Mon-Fri (holidays not known)",
                mh.open.format("%H:%M"),
                mh.close.format("%H:%M")
            );
        }
        Some(MarketChoice::Segments(s)) => s,
    };
    let today = ist::to_ist(&clock.now()).date_naive();
    let extra = cfg.calendar_file.as_ref().map(|p| format!(" + {}", p.display())).unwrap_or_default();
    match crate::calendar::end_notice(&cfg.calendar, segs, today) {
        Some((_, notice)) => println!("⚠️  Calendar    {notice}"),
        None => {
            let end = cfg.calendar.data_ends(segs).map(|d| d.to_string()).unwrap_or_else(|| "?".into());
            println!("✅ Calendar    rotations avoid {segs} sessions; data to {end} (built in{extra})");
        }
    }
}

/// Runs every check and prints one line each. Exit 0 when all pass.
pub async fn check(cfg: &Config, clock: &dyn Clock) -> ExitCode {
    let mut failed = !local_checks(cfg, clock).await;
    let store = TokenStore::new(&cfg.token_file);
    let (token, ok) = saved_token(&store, clock.now());
    failed |= !ok;
    failed |= !bind(cfg);
    let client = match super::dhan_client(cfg) {
        Ok(c) => c,
        Err(e) => {
            println!("❌ Dhan        {e}");
            return ExitCode::FAILURE;
        }
    };
    failed |= !dhan_hosts(cfg, &client, clock).await;
    if let Some(t) = token {
        failed |= !token_with_dhan(&client, &t).await;
    }
    let last_mint = crate::state::StateFile::peek(&cfg.token_file)
        .and_then(|s| s.last_mint_at)
        .map(|t| t.with_timezone(&chrono::Utc));
    println!("\nThe plan");
    let saved = store.load().ok().flatten();
    for l in super::preflight::plan(cfg, saved.as_ref(), last_mint, clock.now()) {
        println!("   {l}");
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Config, calendar, Telegram, HTTP, the token directory, the hook: what fails later if wrong.
async fn local_checks(cfg: &Config, clock: &dyn Clock) -> bool {
    let mut ok = true;
    let origin = cfg.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "environment only".into());
    println!("✅ Config      {origin}");
    println!("   Mode        {}", cfg.mode());
    calendar(cfg, clock);
    for w in &cfg.warnings {
        println!("⚠️  Config      {w}");
    }
    match (&cfg.telegram_bot_token, cfg.telegram_chat_id) {
        (Some(bot_token), Some(chat)) => {
            let admin = cfg.admin_chat_id.unwrap_or(chat);
            ok &= telegram(cfg, bot_token, chat, admin).await;
        }
        _ => println!("⚠️  Telegram    not configured: no alerts, no remote control"),
    }
    if let Some(addr) = cfg.http_listen {
        if cfg.http_allow_remote && !addr.ip().is_loopback() {
            println!(
                "⚠️  HTTP        {addr}, reachable beyond this machine (http_allow_remote); /token needs http_token"
            );
        } else {
            println!("✅ HTTP        {addr}, this machine only");
        }
    }
    let token_dir = match cfg.token_file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut local = Vec::new();
    if let Some(reason) = crate::harden::unsafe_dir(token_dir) {
        println!("❌ Token dir   {reason}");
        ok = false;
    } else {
        local.push(super::preflight::token_dir(&cfg.token_file));
    }
    local.extend(
        cfg.on_refresh.as_deref().and_then(|argv| super::preflight::hook(argv, std::env::var_os("PATH").as_deref())),
    );
    local.extend(super::preflight::http_token(cfg));
    for l in &local {
        let mark = if l.ok { "✅" } else { "❌" };
        println!("{mark} {:<11} {}", l.label, l.text);
        ok &= l.ok;
    }
    ok
}

/// The saved token, if it is valid; `false` when the file cannot be read.
fn saved_token(store: &TokenStore, now: chrono::DateTime<chrono::Utc>) -> (Option<crate::token::Token>, bool) {
    match store.load() {
        Ok(Some(t)) if t.is_expired(now) => {
            println!("⚠️  Token file  {}: expired {}", store.path().display(), ist::human(&t.expires_at));
            (None, true)
        }
        Ok(Some(t)) => {
            println!(
                "✅ Token file  {}: valid until {} ({} left)",
                store.path().display(),
                ist::human(&t.expires_at),
                ist::human_duration(t.remaining(now))
            );
            (Some(t), true)
        }
        Ok(None) => {
            println!("   Token file  {}: no token yet", store.path().display());
            (None, true)
        }
        Err(e) => {
            println!("❌ Token file  {e}");
            (None, false)
        }
    }
}

/// This machine has the `bind_address` Dhan calls leave from (a UDP bind: nothing waits).
fn bind(cfg: &Config) -> bool {
    let Some(ip) = cfg.bind_address else {
        return true;
    };
    match crate::dhan::bind_check(ip) {
        Ok(()) => {
            println!("✅ Bind        calls to Dhan leave from {ip}");
            true
        }
        Err(e) => {
            println!("❌ Bind        {e}");
            false
        }
    }
}

/// Both Dhan hosts answer, and this machine's clock agrees with Dhan's.
async fn dhan_hosts(cfg: &Config, client: &crate::dhan::DhanClient, clock: &dyn Clock) -> bool {
    let mut ok = true;
    match client.probe_auth().await {
        Ok(p) => println!("✅ Dhan auth   {} answered in {} ms", cfg.dhan_auth_url, p.rtt.as_millis()),
        Err(e) => {
            println!("❌ Dhan auth   {e}");
            ok = false;
        }
    }
    let before = clock.now();
    match client.probe_api().await {
        Ok(p) => {
            println!("✅ Dhan api    {} answered in {} ms", cfg.dhan_api_url, p.rtt.as_millis());
            ok &= clock_line(p.clock_offset_secs(before));
        }
        Err(e) => {
            println!("❌ Dhan api    {e}");
            ok = false;
        }
    }
    ok
}

/// The clock line; `false` when the offset breaks TOTP.
fn clock_line(offset: Option<f64>) -> bool {
    let Some(offset) = offset else {
        println!("⚠️  Clock       Dhan sent no Date header; cannot measure the offset");
        return true;
    };
    let ahead = if offset > 0.0 { "behind" } else { "ahead of" };
    let said = if offset.abs() < 1.0 {
        "within 1 s of Dhan".to_string()
    } else {
        format!("{:.1} s {ahead} Dhan", offset.abs())
    };
    let (mark, note, ok) = if offset.abs() > Probe::CLOCK_FAIL_SECS {
        ("❌", " — TOTP codes will be refused; turn on NTP (timedatectl set-ntp true)", false)
    } else if offset.abs() > Probe::CLOCK_WARN_SECS {
        ("⚠️ ", " — TOTP may fail near window edges; check NTP", true)
    } else {
        ("✅", "", true)
    };
    println!("{mark} Clock       this machine is {said}{note}");
    ok
}

/// Dhan accepts the saved token; the static IP (reported, never a failure).
async fn token_with_dhan(client: &crate::dhan::DhanClient, t: &crate::token::Token) -> bool {
    let mut ok = true;
    match client.profile(&t.access_token).await {
        Ok(p) => println!(
            "✅ Token       accepted by Dhan (client {}, data plan {})",
            p.dhan_client_id,
            or_dash(&p.data_plan)
        ),
        Err(e @ DhanError::AuthFailed { .. }) => {
            println!("❌ Token       {e}");
            ok = false;
        }
        Err(e) => println!("⚠️  Token       could not verify: {e}"),
    }
    // Orders need a registered static IP; tokens do not, so this never fails the check.
    match client.ip_status(&t.access_token).await {
        Ok(ip) if ip.orders_refused() => println!("⚠️  Static IP   {}", ip.summary()),
        Ok(ip) => println!("✅ Static IP   {}", ip.summary()),
        Err(e) => println!("⚠️  Static IP   could not read it from Dhan: {e}"),
    }
    ok
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}
