//! The keys that need more than a string, a duration or a count: each reads and checks one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveTime;
use serde_json::{Map, Value};

use crate::calendar::{Calendar, Segments};
use crate::config::{MarketChoice, MarketHours};
use crate::secret::Secret;
use crate::totp::TotpSecret;

use super::reader::Reader;

pub(super) fn client_id(r: &mut Reader<'_>) -> Option<String> {
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

pub(super) fn totp_secret(r: &mut Reader<'_>) -> Option<TotpSecret> {
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

pub(super) fn pin(r: &mut Reader<'_>) -> Option<Secret> {
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

pub(super) fn bot_token(r: &mut Reader<'_>) -> Option<Secret> {
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
pub(super) fn market_hours(r: &mut Reader<'_>) -> Option<MarketChoice> {
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
pub(super) fn calendar(r: &mut Reader<'_>, base_dir: &Path) -> (Arc<Calendar>, Option<PathBuf>) {
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

pub(super) fn on_refresh(r: &mut Reader<'_>) -> Option<Vec<String>> {
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

pub(super) fn http_listen(r: &mut Reader<'_>, allow_remote: bool, has_token: bool) -> Option<SocketAddr> {
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
pub(super) fn bind_address(r: &mut Reader<'_>) -> Option<IpAddr> {
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
pub(in crate::config) fn account_chat_id(map: &Map<String, Value>) -> Result<Option<i64>, Vec<String>> {
    let mut r = Reader { map, problems: Vec::new(), warnings: Vec::new() };
    let id = r.chat_id("telegram_chat_id");
    if r.problems.is_empty() { Ok(id) } else { Err(r.problems) }
}

/// A yes/no key: JSON `true`/`false` or the strings "true"/"false" (environment variables).
pub(super) fn flag(r: &mut Reader<'_>, key: &str) -> bool {
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
pub(super) fn token_file_mode(r: &mut Reader<'_>) -> u32 {
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
pub(super) fn token_file_group(r: &mut Reader<'_>) -> Option<u32> {
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
