//! Turning the layered key/value map into a typed [`Config`], one problem message per bad key.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveTime;
use serde_json::{Map, Value};
use url::Url;

use super::{Config, MarketChoice, MarketHours};
use crate::calendar::{Calendar, Segments};
use crate::secret::Secret;
use crate::totp::TotpSecret;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Collects problems while reading keys; a failed key yields `None` and one message.
struct Reader<'a> {
    map: &'a Map<String, Value>,
    problems: Vec<String>,
    warnings: Vec<String>,
}

impl Reader<'_> {
    fn problem(&mut self, msg: String) -> Option<std::convert::Infallible> {
        self.problems.push(msg);
        None
    }

    /// A string value, or `None` when absent, null or empty. Numbers are accepted as text.
    fn text(&mut self, key: &str) -> Option<String> {
        match self.map.get(key)? {
            Value::Null => None,
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => {
                self.problem(format!("`{key}` must be a string"));
                None
            }
        }
    }

    /// Placeholders copied from the prototype's example (`YOUR_CLIENT_ID`) are reported as such.
    fn not_placeholder(&mut self, key: &str, v: String, what: &str) -> Option<String> {
        if v.to_ascii_uppercase().starts_with("YOUR_") {
            self.problem(format!("`{key}` is still the example placeholder; replace it with {what}"));
            return None;
        }
        Some(v)
    }

    fn secret(&mut self, key: &str, what: &str) -> Option<Secret> {
        let v = self.text(key)?;
        self.not_placeholder(key, v, what).map(Secret::new)
    }

    fn chat_id(&mut self, key: &str) -> Option<i64> {
        let v = self.text(key)?;
        let v = self.not_placeholder(key, v, "the numeric chat id (message @userinfobot to see yours)")?;
        match v.parse::<i64>() {
            Ok(id) if id != 0 => Some(id),
            _ => {
                self.problem(format!(
                    "`{key}` must be a numeric Telegram chat id such as 123456789 (groups are negative), got {v:?}; \
                     message @userinfobot to see yours"
                ));
                None
            }
        }
    }

    fn url(&mut self, key: &str, default: &str) -> Option<Url> {
        let raw = self.text(key).unwrap_or_else(|| default.to_string());
        match Url::parse(&raw) {
            Ok(u) if u.scheme() == "http" && u.has_host() && u.query().is_none() && !is_this_machine(&u) => {
                self.problem(format!(
                    "`{key}` uses plain http:// to another machine ({}); what is sent there (the PIN and TOTP code, \
                     tokens, the bot token) would cross the network unencrypted; use https://, or http:// only to \
                     127.0.0.1 / localhost",
                    u.host_str().unwrap_or_default()
                ));
                None
            }
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() && u.query().is_none() => Some(u),
            Ok(_) => {
                self.problem(format!(
                    "`{key}` must be an http(s) base URL without a query, like {default}; got {raw:?}"
                ));
                None
            }
            Err(e) => {
                self.problem(format!("`{key}` is not a URL ({e}): {raw:?}; expected something like {default}"));
                None
            }
        }
    }

    /// Whether a problem was already reported for `key`.
    fn failed(&self, key: &str) -> bool {
        let tag = format!("`{key}`");
        self.problems.iter().any(|p| p.starts_with(&tag))
    }

    /// A small positive whole number. Like every optional key below, a bad value is reported
    /// and the default stands in, so validation goes on (the config is refused anyway).
    fn count(&mut self, key: &str, default: u32) -> u32 {
        let Some(raw) = self.text(key) else {
            return default;
        };
        match raw.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                self.problem(format!("`{key}` must be a whole number from 1 to 1000 (default {default}); got {raw:?}"));
                default
            }
        }
    }

    fn duration(&mut self, key: &str, default: Duration) -> Duration {
        let Some(raw) = self.text(key) else {
            return default;
        };
        match humantime::parse_duration(&raw) {
            Ok(d) if d.is_zero() || d >= DAY => {
                self.problem(format!("`{key}` must be more than 0 and less than 24h (tokens live 24h); got {raw:?}"));
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.problem(format!("`{key}` is not a duration ({e}); write it like \"2h\", \"30m\" or \"1h 30m\""));
                default
            }
        }
    }
}

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
fn is_this_machine(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether a key is present at all (even if its value was bad and already reported).
fn has(r: &Reader<'_>, key: &str) -> bool {
    r.map.get(key).is_some_and(|v| !v.is_null())
}

fn client_id(r: &mut Reader<'_>) -> Option<String> {
    let Some(v) = r.text("client_id") else {
        r.problem("`client_id` is missing; set it to your Dhan client ID (Dhan Web → My Profile)".into());
        return None;
    };
    let v = r.not_placeholder("client_id", v, "your Dhan client ID (Dhan Web → My Profile)")?;
    if !v.chars().all(|c| c.is_ascii_alphanumeric()) || v.len() > 32 {
        r.problem(format!(
            "`client_id` must be your Dhan client ID, letters and digits only (like 1000000001); got {v:?}"
        ));
        return None;
    }
    Some(v)
}

fn totp_secret(r: &mut Reader<'_>) -> Option<TotpSecret> {
    let s = r.secret("totp_secret", "the TOTP secret from Dhan Web → DhanHQ Trading APIs → Setup TOTP")?;
    match TotpSecret::parse(s.expose()) {
        Ok(t) => Some(t),
        Err(e) => {
            r.problem(format!(
                "`totp_secret` is not a valid base32 TOTP secret: {e}; copy the secret (not the 6-digit code) shown \
                 when you set up TOTP on Dhan Web"
            ));
            None
        }
    }
}

fn pin(r: &mut Reader<'_>) -> Option<Secret> {
    let s = r.secret("pin", "your Dhan PIN")?;
    let ok = s.expose().chars().all(|c| c.is_ascii_digit()) && (4..=8).contains(&s.expose().len());
    if !ok {
        r.problem(
            "`pin` must be your Dhan login PIN: 4 to 8 digits, nothing else (write it as a string: \"123456\")".into(),
        );
        return None;
    }
    Some(s)
}

fn bot_token(r: &mut Reader<'_>) -> Option<Secret> {
    let s = r.secret("telegram_bot_token", "the token BotFather gave you")?;
    let t = s.expose();
    let well_formed = t.len() <= 80
        && t.split_once(':').is_some_and(|(id, rest)| {
            !id.is_empty()
                && !id.starts_with('0')
                && id.chars().all(|c| c.is_ascii_digit())
                && rest.len() >= 20
                && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if !well_formed {
        r.problem(
            "`telegram_bot_token` does not look like a bot token; it should be the whole `123456789:AA...` line that \
             BotFather sent"
                .into(),
        );
        return None;
    }
    Some(s)
}

/// `None` for "off" (or a bad value, which is reported). Segment names (`"equity"`, a list, or
/// `"equity,commodity"`) choose calendar sessions; `"HH:MM-HH:MM"` keeps one fixed window.
fn market_hours(r: &mut Reader<'_>) -> Option<MarketChoice> {
    let hint = "`market_hours` must be \"equity\" (the default), \"commodity\", \"currency\", a list of those like \
                [\"equity\", \"commodity\"], a fixed IST window \"HH:MM-HH:MM\" with the open before the close, or \"off\"";
    let raw = match r.map.get("market_hours") {
        Some(Value::Array(items)) => {
            let names: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            match names {
                Some(names) if !names.is_empty() => names.join(","),
                _ => {
                    r.problem(format!("{hint}; got a list that is empty or not all strings"));
                    return None;
                }
            }
        }
        _ => match r.text("market_hours") {
            Some(raw) => raw,
            None if r.failed("market_hours") => return None,
            None => return Some(MarketChoice::default()),
        },
    };
    if raw.eq_ignore_ascii_case("off") {
        return None;
    }
    if raw.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return match Segments::parse_list(&raw) {
            Ok(segs) => Some(MarketChoice::Segments(segs)),
            Err(bad) => {
                r.problem(format!("{hint}; {bad:?} is not a segment"));
                None
            }
        };
    }
    let parsed = raw.split_once('-').and_then(|(a, b)| {
        let open = NaiveTime::parse_from_str(a.trim(), "%H:%M").ok()?;
        let close = NaiveTime::parse_from_str(b.trim(), "%H:%M").ok()?;
        (open < close).then_some(MarketHours { open, close })
    });
    if parsed.is_none() {
        r.problem(format!("{hint}; got {raw:?}"));
    }
    parsed.map(MarketChoice::Window)
}

/// The embedded calendar with the user's `calendar_file` applied; bad lines are reported with
/// their numbers.
fn calendar(r: &mut Reader<'_>, base_dir: &Path) -> (Arc<Calendar>, Option<PathBuf>) {
    const MAX: u64 = 1 << 20;
    let mut cal = match Calendar::embedded() {
        Ok(c) => c,
        Err(errs) => {
            r.problem(format!("internal: the embedded calendar does not parse ({}); please report this", errs[0]));
            Calendar::default()
        }
    };
    let Some(file) = r.text("calendar_file") else {
        return (Arc::new(cal), None);
    };
    let path = base_dir.join(&file);
    let shown = path.display();
    let text = match std::fs::metadata(&path) {
        Ok(m) if !m.is_file() => Err(format!("`calendar_file` {shown} is not a regular file")),
        Ok(m) if m.len() > MAX => Err(format!("`calendar_file` {shown} is larger than 1 MiB; is it the right file?")),
        Ok(_) => std::fs::read_to_string(&path).map_err(|e| format!("`calendar_file` {shown} cannot be read: {e}")),
        Err(e) => Err(format!("`calendar_file` {shown} cannot be read: {e}")),
    };
    match text {
        Ok(text) => {
            if let Err(errs) = cal.apply(&text) {
                for e in errs {
                    r.problem(format!("`calendar_file` {shown} {e}"));
                }
            }
        }
        Err(msg) => {
            r.problem(msg);
        }
    }
    (Arc::new(cal), Some(path))
}

fn on_refresh(r: &mut Reader<'_>) -> Option<Vec<String>> {
    let hint = "`on_refresh` must be a command as a list of strings, like [\"/usr/local/bin/reload-algo\", \"--quiet\"] \
                (it runs without a shell; the token arrives in $DHAN_ACCESS_TOKEN)";
    match r.map.get("on_refresh") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let argv: Option<Vec<String>> = items.iter().map(|v| v.as_str().map(str::to_string)).collect();
            match argv {
                Some(argv) if argv.first().is_some_and(|p| !p.trim().is_empty()) => Some(argv),
                _ => {
                    r.problem(hint.into());
                    None
                }
            }
        }
        Some(_) => {
            r.problem(hint.into());
            None
        }
    }
}

fn http_listen(r: &mut Reader<'_>, allow_remote: bool, has_token: bool) -> Option<SocketAddr> {
    let raw = r.text("http_listen")?;
    let parsed = raw.parse::<SocketAddr>().ok().or_else(|| {
        let port = raw.strip_prefix("localhost:")?.parse::<u16>().ok()?;
        Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
    });
    match parsed {
        Some(addr) if addr.ip().is_loopback() => Some(addr),
        Some(addr) if allow_remote && has_token => {
            r.warnings.push(format!(
                "`http_listen` {addr} is reachable beyond this machine (`http_allow_remote`): GET /token needs the \
                 bearer `http_token`, but traffic is plain HTTP; keep it on a private network"
            ));
            Some(addr)
        }
        Some(_) if allow_remote => {
            r.problem(format!(
                "`http_listen` {raw:?} is not a loopback address, and `http_allow_remote` needs `http_token` set too \
                 (generate one with: openssl rand -hex 24)"
            ));
            None
        }
        Some(_) => {
            r.problem(format!(
                "`http_listen` must be a loopback address such as \"127.0.0.1:8765\"; {raw:?} would expose the token \
                 beyond this machine (to allow that on purpose, set \"http_allow_remote\": true and `http_token`)"
            ));
            None
        }
        None => {
            r.problem(format!("`http_listen` must be an address with a port, like \"127.0.0.1:8765\"; got {raw:?}"));
            None
        }
    }
}

/// The local address Dhan calls leave from. Only its form is checked here; whether this machine
/// has it is `check`'s question ([`crate::dhan::bind_check`]), since a config may be written on
/// another machine.
fn bind_address(r: &mut Reader<'_>) -> Option<IpAddr> {
    let raw = r.text("bind_address")?;
    let hint = "`bind_address` must be one IP address of this machine, without a port, like \"203.0.113.7\" (see: \
                ip -brief address); Dhan calls for the account leave from it";
    match raw.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => {
            r.problem(format!("{hint}; {raw:?} means any address: leave `bind_address` out instead"));
            None
        }
        Ok(ip) if ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) => {
            r.problem(format!("{hint}; {raw:?} is a multicast or broadcast address"));
            None
        }
        Ok(ip) => Some(ip),
        Err(_) => {
            r.problem(format!("{hint}; got {:?}", crate::harden::sanitize(&raw, 60)));
            None
        }
    }
}

/// An account's own `telegram_chat_id` (inside `accounts`), checked like the shared one.
pub(super) fn account_chat_id(map: &Map<String, Value>) -> Result<Option<i64>, Vec<String>> {
    let mut r = Reader { map, problems: Vec::new(), warnings: Vec::new() };
    let id = r.chat_id("telegram_chat_id");
    if r.problems.is_empty() { Ok(id) } else { Err(r.problems) }
}

/// A yes/no key: JSON `true`/`false` or the strings "true"/"false" (environment variables).
fn flag(r: &mut Reader<'_>, key: &str) -> bool {
    match r.map.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") || s.trim().is_empty() => false,
        Some(_) => {
            r.problem(format!("`{key}` must be true or false"));
            false
        }
    }
}

/// Octal permission bits for the token file: owner read+write always, group read (or
/// read+write) allowed, nothing for others and no execute bits.
fn token_file_mode(r: &mut Reader<'_>) -> u32 {
    let Some(raw) = r.text("token_file_mode") else {
        return 0o600;
    };
    let digits = raw.strip_prefix("0o").unwrap_or(&raw);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode & !0o660 == 0 && mode & 0o600 == 0o600 => mode,
        Ok(_) => {
            r.problem(format!(
                "`token_file_mode` {raw:?} is not allowed: the owner must read and write (0600), the group may read \
                 (0640) or read and write (0660), others get nothing; use \"0600\" or \"0640\""
            ));
            0o600
        }
        Err(_) => {
            r.problem(format!(
                "`token_file_mode` must be octal permission bits as a string, like \"0640\"; got {raw:?}"
            ));
            0o600
        }
    }
}

/// A group name (looked up in /etc/group) or a numeric gid.
fn token_file_group(r: &mut Reader<'_>) -> Option<u32> {
    let raw = r.text("token_file_group")?;
    if let Ok(gid) = raw.parse::<u32>() {
        return Some(gid);
    }
    let found = std::fs::read_to_string("/etc/group").ok().and_then(|groups| {
        groups.lines().find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some(raw.as_str())).then(|| fields.nth(1).and_then(|g| g.parse::<u32>().ok()))?
        })
    });
    if found.is_none() {
        r.problem(format!(
            "`token_file_group` {raw:?} is not a group in /etc/group; give an existing group name or its numeric \
             gid (see: getent group)"
        ));
    }
    found
}
