//! Turning the layered key/value map into a typed [`Config`], one problem message per bad key.

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};
use url::Url;

use super::Config;

mod keys;
mod reader;

pub(super) use keys::account_chat_id;
use keys::*;
use reader::Reader;

const DAY: Duration = Duration::from_secs(24 * 3600);

pub(super) fn validate(
    map: &Map<String, Value>,
    base_dir: &Path,
    problems: Vec<String>,
) -> Result<Config, Vec<String>> {
    let mut r = Reader { map, problems, warnings: Vec::new() };

    let client_id = client_id(&mut r);
    let api_key = r.secret("api_key", "the API key from Dhan Web → Access DhanHQ APIs");
    let api_secret = r.secret("api_secret", "the API secret from Dhan Web → Access DhanHQ APIs");
    let totp_secret = totp_secret(&mut r);
    let pin = pin(&mut r);
    let telegram_bot_token = bot_token(&mut r);
    let telegram_chat_id = r.chat_id("telegram_chat_id");
    let admin_chat_id = r.chat_id("admin_chat_id").or(telegram_chat_id);
    let token_file = r.text("token_file").map(|p| base_dir.join(p)).unwrap_or_else(|| base_dir.join("dhan_token.json"));
    let alert_before = r.duration("alert_before", Duration::from_secs(2 * 3600));
    let refresh_before = r.duration("refresh_before", Duration::from_secs(30 * 60));
    let market_hours = market_hours(&mut r);
    let (calendar, calendar_file) = calendar(&mut r, base_dir);
    let dhan_auth_url = r.url("dhan_auth_url", "https://auth.dhan.co");
    let dhan_api_url = r.url("dhan_api_url", "https://api.dhan.co");
    let telegram_api_url = r.url("telegram_api_url", "https://api.telegram.org");
    let on_refresh = on_refresh(&mut r);
    let http_allow_remote = flag(&mut r, "http_allow_remote");
    let http_token = r.secret("http_token", "a long random string");
    let has_http_token = has(&r, "http_token");
    let http_listen = http_listen(&mut r, http_allow_remote, has_http_token);
    let token_file_mode = token_file_mode(&mut r);
    let token_file_group = token_file_group(&mut r);
    let dhan_timeout = r.duration("dhan_timeout", Duration::from_secs(15));
    let final_alert_before = r.duration("final_alert_before", Duration::from_secs(30 * 60));
    // Dhan allows one mint per 2 minutes counted from the last attempt; 5 s of margin (as
    // practitioners use) so a refusal, which restarts the window, never happens by a whisker.
    let mint_cooldown = r.duration("mint_cooldown", Duration::from_secs(125));
    let retry_min = r.duration("retry_min", Duration::from_secs(5));
    let retry_max = r.duration("retry_max", Duration::from_secs(300));
    let alert_after_failures = r.count("alert_after_failures", 3);
    let verify_every = r.duration("verify_every", Duration::from_secs(15 * 60));
    let reprobe_after = r.duration("reprobe_after", Duration::from_secs(10));
    let hook_timeout = r.duration("hook_timeout", Duration::from_secs(30));
    let fleet = super::fleet::read(map, &mut r.problems, &mut r.warnings);
    let bind_address = bind_address(&mut r);
    // A default never collides with a value the user set: an unset key of a related pair adapts
    // to the set one; only two values the user set can contradict each other.
    let (alert_before, final_alert_before) = ordered_pair(
        &mut r,
        ("final_alert_before", final_alert_before, |alert: Duration| alert / 4),
        ("alert_before", alert_before, |fin: Duration| fin.saturating_mul(4).min(DAY - Duration::from_secs(1))),
        "the final alert comes last",
    );
    let (retry_max, retry_min) = ordered_pair(
        &mut r,
        ("retry_min", retry_min, |max: Duration| max),
        ("retry_max", retry_max, |min: Duration| min),
        "retries start short and grow",
    );

    // Cross-key rules, on presence rather than validity so a bad value is reported once.
    let (has_pin, has_totp) = (has(&r, "pin"), has(&r, "totp_secret"));
    let (has_key, has_secret) = (has(&r, "api_key"), has(&r, "api_secret"));
    if has_pin && !has_totp {
        r.problem("`pin` is set but `totp_secret` is missing; automatic mode needs both".into());
    }
    if !(has_pin || has_key && has_secret) {
        if has_key || has_secret {
            r.problem(
                "the consent flow needs both `api_key` and `api_secret` (or set `pin` and `totp_secret` for \
                 automatic mode)"
                    .into(),
            );
        } else {
            r.problem(
                "no way to obtain a token: set `pin` and `totp_secret` for automatic mode, or `api_key` and \
                 `api_secret` for the consent flow"
                    .into(),
            );
        }
    }
    if telegram_bot_token.is_some() && telegram_chat_id.is_none() && !has(&r, "telegram_chat_id") {
        r.problem("`telegram_bot_token` is set but `telegram_chat_id` is missing; alerts need somewhere to go".into());
    }
    if http_listen.is_some() && http_token.is_none() && !has(&r, "http_token") {
        r.warnings.push("`http_listen` is set without `http_token`: GET /token stays disabled".into());
    }
    if http_token.as_ref().is_some_and(|t| t.expose().len() < 16) {
        r.problem("`http_token` must be at least 16 characters; generate one with: openssl rand -hex 24".into());
    }

    if !r.problems.is_empty() {
        return Err(r.problems);
    }
    let (Some(client_id), Some(dhan_auth_url), Some(dhan_api_url), Some(telegram_api_url)) =
        (client_id, dhan_auth_url, dhan_api_url, telegram_api_url)
    else {
        return Err(vec!["internal: a key failed without a message; please report this".into()]);
    };
    Ok(Config {
        path: None,
        client_id,
        api_key,
        api_secret,
        totp_secret,
        pin,
        telegram_bot_token,
        telegram_chat_id,
        admin_chat_id,
        token_file,
        alert_before,
        refresh_before,
        market_hours,
        calendar,
        calendar_file,
        dhan_auth_url,
        dhan_api_url,
        telegram_api_url,
        on_refresh,
        http_listen,
        http_token,
        dhan_timeout,
        final_alert_before,
        mint_cooldown,
        retry_min,
        retry_max,
        alert_after_failures,
        verify_every,
        reprobe_after,
        hook_timeout,
        http_allow_remote,
        token_file_mode,
        token_file_group,
        fleet,
        bind_address,
        warnings: r.warnings,
    })
}

/// A pair of durations where `small` must not exceed `large`. When only one of them is the
/// user's, the other adapts (`adapt` maps the user's value to the other's); when both are, a
/// contradiction is reported. Returns `(large, small)`.
fn ordered_pair(
    r: &mut Reader<'_>,
    (small_key, small, small_from_large): (&str, Duration, fn(Duration) -> Duration),
    (large_key, large, large_from_small): (&str, Duration, fn(Duration) -> Duration),
    why: &str,
) -> (Duration, Duration) {
    if small <= large || r.failed(small_key) || r.failed(large_key) {
        return (large, small);
    }
    match (has(r, small_key), has(r, large_key)) {
        (true, true) => {
            r.problem(format!(
                "`{small_key}` ({}) must not be longer than `{large_key}` ({}); {why}",
                humantime::format_duration(small),
                humantime::format_duration(large)
            ));
            (large, small)
        }
        (true, false) => (large_from_small(small).max(small), small),
        _ => (large, small_from_large(large).min(large)),
    }
}

/// Whether a URL points at this machine (a loopback address or `localhost`).
pub(super) fn is_this_machine(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether a key is present at all (even if its value was bad and already reported).
pub(super) fn has(r: &Reader<'_>, key: &str) -> bool {
    r.map.get(key).is_some_and(|v| !v.is_null())
}
