//! Turning the layered key/value map into a typed [`Config`], one problem message per bad key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use url::Url;

use super::{Config, FleetConfig, MarketChoice};
use crate::calendar::Calendar;
use crate::secret::Secret;
use crate::totp::TotpSecret;

mod keys;
mod reader;

pub(super) use reader::Reader;

pub(super) use keys::account_chat_id;
use keys::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

pub(super) fn validate(
    map: &Map<String, Value>,
    base_dir: &Path,
    problems: Vec<String>,
) -> Result<Config, Vec<String>> {
    let mut r = Reader { map, problems, warnings: Vec::new() };

    // The read order below is the order problems are reported in, so it is kept as it was even
    // where it interleaves the groups (the alert durations come before the service keys).
    let identity = Identity::read(&mut r, base_dir);
    let alert_before = r.duration("alert_before", Duration::from_secs(2 * 3600));
    let refresh_before = r.duration("refresh_before", Duration::from_secs(30 * 60));
    let services = Services::read(&mut r, base_dir);
    let mut timings = Timings::read(&mut r, alert_before, refresh_before);
    let fleet = super::fleet::read(map, &mut r.problems, &mut r.warnings);
    let fleet = super::fleet::with_lease(&mut r, fleet, timings.dhan_timeout, timings.refresh_before);
    let bind_address = bind_address(&mut r);
    timings.adapt_pairs(&mut r);
    cross_key_rules(&mut r, &identity, &services);

    if !r.problems.is_empty() {
        return Err(r.problems);
    }
    assemble(identity, services, timings, fleet, bind_address, r.warnings)
}

/// Who the daemon logs in as and where it reports: the credential and chat keys.
struct Identity {
    client_id: Option<String>,
    api_key: Option<Secret>,
    api_secret: Option<Secret>,
    totp_secret: Option<TotpSecret>,
    pin: Option<Secret>,
    telegram_bot_token: Option<Secret>,
    telegram_chat_id: Option<i64>,
    admin_chat_id: Option<i64>,
    token_file: PathBuf,
}

impl Identity {
    /// Reads the identity and credential keys; the admin chat falls back to the alert chat.
    fn read(r: &mut Reader<'_>, base_dir: &Path) -> Identity {
        let client_id = client_id(r);
        let api_key = r.secret("api_key", "the API key from Dhan Web → Access DhanHQ APIs");
        let api_secret = r.secret("api_secret", "the API secret from Dhan Web → Access DhanHQ APIs");
        let totp_secret = totp_secret(r);
        let pin = pin(r);
        let telegram_bot_token = bot_token(r);
        let telegram_chat_id = r.chat_id("telegram_chat_id");
        let admin_chat_id = r.chat_id("admin_chat_id").or(telegram_chat_id);
        let token_file =
            r.text("token_file").map(|p| base_dir.join(p)).unwrap_or_else(|| base_dir.join("dhan_token.json"));
        Identity {
            client_id,
            api_key,
            api_secret,
            totp_secret,
            pin,
            telegram_bot_token,
            telegram_chat_id,
            admin_chat_id,
            token_file,
        }
    }
}

/// What the daemon talks to and serves: calendar, endpoints, hook, HTTP listener, token file.
struct Services {
    market_hours: Option<MarketChoice>,
    calendar: Arc<Calendar>,
    calendar_file: Option<PathBuf>,
    dhan_auth_url: Option<Url>,
    dhan_api_url: Option<Url>,
    telegram_api_url: Option<Url>,
    on_refresh: Option<Vec<String>>,
    http_allow_remote: bool,
    http_token: Option<Secret>,
    http_listen: Option<SocketAddr>,
    token_file_mode: u32,
    token_file_group: Option<u32>,
}

impl Services {
    /// Reads the service keys; `http_listen` is checked against the remote flag and the token.
    fn read(r: &mut Reader<'_>, base_dir: &Path) -> Services {
        let market_hours = market_hours(r);
        let (calendar, calendar_file) = calendar(r, base_dir);
        let dhan_auth_url = r.url("dhan_auth_url", "https://auth.dhan.co");
        let dhan_api_url = r.url("dhan_api_url", "https://api.dhan.co");
        let telegram_api_url = r.url("telegram_api_url", "https://api.telegram.org");
        let on_refresh = on_refresh(r);
        let http_allow_remote = flag(r, "http_allow_remote");
        let http_token = r.secret("http_token", "a long random string");
        let has_http_token = has(r, "http_token");
        let http_listen = http_listen(r, http_allow_remote, has_http_token);
        let token_file_mode = token_file_mode(r);
        let token_file_group = token_file_group(r);
        Services {
            market_hours,
            calendar,
            calendar_file,
            dhan_auth_url,
            dhan_api_url,
            telegram_api_url,
            on_refresh,
            http_allow_remote,
            http_token,
            http_listen,
            token_file_mode,
            token_file_group,
        }
    }
}

/// The durations and counts that pace alerts, refreshes, retries and checks.
struct Timings {
    alert_before: Duration,
    refresh_before: Duration,
    dhan_timeout: Duration,
    final_alert_before: Duration,
    mint_cooldown: Duration,
    retry_min: Duration,
    retry_max: Duration,
    alert_after_failures: u32,
    verify_every: Duration,
    reprobe_after: Duration,
    hook_timeout: Duration,
}

impl Timings {
    /// Reads the remaining timing keys; `alert_before` and `refresh_before` were read earlier
    /// (see `validate`) and are passed in.
    fn read(r: &mut Reader<'_>, alert_before: Duration, refresh_before: Duration) -> Timings {
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
        Timings {
            alert_before,
            refresh_before,
            dhan_timeout,
            final_alert_before,
            mint_cooldown,
            retry_min,
            retry_max,
            alert_after_failures,
            verify_every,
            reprobe_after,
            hook_timeout,
        }
    }

    /// A default never collides with a value the user set: an unset key of a related pair adapts
    /// to the set one; only two values the user set can contradict each other.
    fn adapt_pairs(&mut self, r: &mut Reader<'_>) {
        (self.alert_before, self.final_alert_before) = ordered_pair(
            r,
            ("final_alert_before", self.final_alert_before, |alert: Duration| alert / 4),
            ("alert_before", self.alert_before, |fin: Duration| {
                fin.saturating_mul(4).min(DAY - Duration::from_secs(1))
            }),
            "the final alert comes last",
        );
        (self.retry_max, self.retry_min) = ordered_pair(
            r,
            ("retry_min", self.retry_min, |max: Duration| max),
            ("retry_max", self.retry_max, |min: Duration| min),
            "retries start short and grow",
        );
    }
}

/// Rules that span keys, on presence rather than validity so a bad value is reported once.
fn cross_key_rules(r: &mut Reader<'_>, id: &Identity, services: &Services) {
    let (has_pin, has_totp) = (has(r, "pin"), has(r, "totp_secret"));
    let (has_key, has_secret) = (has(r, "api_key"), has(r, "api_secret"));
    if has_pin && !has_totp {
        r.problem("`pin` is set but `totp_secret` is missing; automatic mode needs both".into());
    }
    // With `redis_url`, no credentials at all is a follower only (it never mints).
    if !(has_pin || has_key && has_secret) && (has_key || has_secret || !has(r, "redis_url")) {
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
    if id.telegram_bot_token.is_some() && id.telegram_chat_id.is_none() && !has(r, "telegram_chat_id") {
        r.problem("`telegram_bot_token` is set but `telegram_chat_id` is missing; alerts need somewhere to go".into());
    }
    if services.http_listen.is_some() && services.http_token.is_none() && !has(r, "http_token") {
        r.warnings.push("`http_listen` is set without `http_token`: GET /token stays disabled".into());
    }
    if services.http_token.as_ref().is_some_and(|t| t.expose().len() < 16) {
        r.problem("`http_token` must be at least 16 characters; generate one with: openssl rand -hex 24".into());
    }
}

/// Builds the [`Config`] once no problem was reported; a required key still missing here means a
/// reader failed without saying why, which is our bug, not the user's.
fn assemble(
    id: Identity,
    s: Services,
    t: Timings,
    fleet: Option<FleetConfig>,
    bind_address: Option<IpAddr>,
    warnings: Vec<String>,
) -> Result<Config, Vec<String>> {
    let (Some(client_id), Some(dhan_auth_url), Some(dhan_api_url), Some(telegram_api_url)) =
        (id.client_id, s.dhan_auth_url, s.dhan_api_url, s.telegram_api_url)
    else {
        return Err(vec!["internal: a key failed without a message; please report this".into()]);
    };
    Ok(Config {
        path: None,
        client_id,
        api_key: id.api_key,
        api_secret: id.api_secret,
        totp_secret: id.totp_secret,
        pin: id.pin,
        telegram_bot_token: id.telegram_bot_token,
        telegram_chat_id: id.telegram_chat_id,
        admin_chat_id: id.admin_chat_id,
        token_file: id.token_file,
        alert_before: t.alert_before,
        refresh_before: t.refresh_before,
        market_hours: s.market_hours,
        calendar: s.calendar,
        calendar_file: s.calendar_file,
        dhan_auth_url,
        dhan_api_url,
        telegram_api_url,
        on_refresh: s.on_refresh,
        http_listen: s.http_listen,
        http_token: s.http_token,
        dhan_timeout: t.dhan_timeout,
        final_alert_before: t.final_alert_before,
        mint_cooldown: t.mint_cooldown,
        retry_min: t.retry_min,
        retry_max: t.retry_max,
        alert_after_failures: t.alert_after_failures,
        verify_every: t.verify_every,
        reprobe_after: t.reprobe_after,
        hook_timeout: t.hook_timeout,
        http_allow_remote: s.http_allow_remote,
        token_file_mode: s.token_file_mode,
        token_file_group: s.token_file_group,
        fleet,
        bind_address,
        warnings,
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
