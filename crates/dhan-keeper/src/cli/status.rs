//! `status` and `token`: what the token file holds and what the daemon knows about it, without
//! touching the network.
//!
//! The token file alone cannot tell a valid token from one Dhan has already rejected (revoked by a
//! Dhan-Web login, say): both have a future expiry. The daemon writes Dhan's last verdict into its
//! state file (`<token file>.state`, [`crate::state::TokenHealth`]), so these commands read both
//! and never show ✅, or print a token with exit 0, for a token Dhan refused. They need only the
//! token file's path (`--token-file`), not the config with the secrets, so the trader's own user
//! can run them while the daemon runs as a service user. Advice depends on whether a daemon holds
//! the lock: "run `dhan-keeper refresh`" cannot work while `run` holds it.

use std::fs::TryLockError;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::clock::Clock;
use crate::ist;
use crate::state::{StateFile, TokenHealth};
use crate::token::{StoreError, Token, TokenStore};

/// What `status` and `token` look at.
#[derive(Debug, Clone)]
pub struct Target {
    /// The token file.
    pub token_file: PathBuf,
    /// The mode from the config, when a config was read (`--token-file` alone has none).
    pub mode: Option<crate::config::Mode>,
    /// The account's label, when the config lists accounts.
    pub label: Option<String>,
}

/// What the token file's token amounts to, all things considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Unexpired, and Dhan did not reject it at the last check (or there was none).
    Valid,
    /// Unexpired, but Dhan rejected it at the last check.
    Rejected,
    /// Past its expiry.
    Expired,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Rejected => "rejected",
            Verdict::Expired => "expired",
        }
    }
}

/// Decides the verdict: pure, table-tested.
pub(crate) fn verdict(token: &Token, health: Option<&TokenHealth>, now: DateTime<Utc>) -> Verdict {
    if token.is_expired(now) {
        return Verdict::Expired;
    }
    // The verdict is about this token only if it names the same one (by expiry).
    match health.filter(|h| h.expires_at == token.expires_at) {
        Some(h) if !h.accepted => Verdict::Rejected,
        _ => Verdict::Valid,
    }
}

/// Who holds the daemon's lock (`<token file>.lock`), if anyone: e.g. `pid 4242 running
/// `dhan-keeper run``. Takes a shared lock for a moment and writes nothing.
pub(crate) fn lock_holder(token_file: &Path) -> Option<String> {
    let mut name = token_file.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "dhan_token.json".into());
    name.push(".lock");
    // Never blocks: a FIFO or anything but a regular file at the lock path is no holder.
    let file = crate::harden::open_nonblocking(&token_file.with_file_name(name), true).ok()?;
    crate::harden::require_regular(&file).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => {
            let mut note = String::new();
            let _ = (&file).take(4096).read_to_string(&mut note);
            let note = crate::harden::sanitize(note.trim(), 200);
            Some(if note.is_empty() { "another process".to_string() } else { note })
        }
        Err(TryLockError::Error(_)) => None,
    }
}

/// Why a token read from `token_file` cannot be trusted: its directory lets users other than its
/// owner create files (sticky or not), so anyone could have planted it. A directory owned by
/// another user (the daemon's service user, handing the token to the trader's) is fine.
fn untrusted_dir(token_file: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dir = match token_file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mode = std::fs::metadata(dir).ok()?.mode();
    (mode & 0o022 != 0).then(|| {
        format!(
            "the token directory {} is writable by other users (mode {:o}), so anyone could have put a token file \
             there; keep token_file in a directory only its owner can write (chmod go-w)",
            dir.display(),
            mode & 0o7777
        )
    })
}

fn health_of(token_file: &Path) -> Option<TokenHealth> {
    StateFile::peek(token_file)?.token_health
}

/// What to do about a missing, expired or rejected token, given who holds the lock and whether
/// automatic minting was stopped after Dhan refused the credentials.
fn advice_with(holder: Option<&str>, stop: Option<&crate::state::CredentialStop>) -> String {
    if let Some(stop) = stop {
        return format!(
            "automatic minting is stopped: Dhan refused the credentials at {} ({}); fix pin, totp_secret or \
             client_id in the config and restart the daemon, or press Refresh on Telegram to try once more",
            ist::human(&stop.at),
            crate::harden::sanitize(&stop.message, 200)
        );
    }
    match holder {
        Some(h) => format!("the running daemon ({h}) is getting a new one; see its log or the Telegram chat"),
        None => "no daemon is running: start `dhan-keeper run`, or mint one with `dhan-keeper refresh`".into(),
    }
}

/// The advice for `token_file`, reading the daemon's state for a credential stop.
fn advice_for(token_file: &Path, holder: Option<&str>) -> String {
    let stop = StateFile::peek(token_file).and_then(|s| s.credentials_refused);
    advice_with(holder, stop.as_ref())
}

/// `dhan-keeper status [--json]`. Exit 0 only when a token Dhan has not rejected is on disk.
pub fn status(targets: &[Target], clock: &dyn Clock, as_json: bool) -> ExitCode {
    let mut values = Vec::new();
    let mut all_valid = true;
    for (i, target) in targets.iter().enumerate() {
        if let (false, Some(label)) = (as_json, &target.label) {
            if i > 0 {
                super::out("");
            }
            super::out(&format!("Account     {label}"));
        }
        let (valid, value) = status_of(target, clock, as_json);
        all_valid &= valid;
        values.extend(value);
    }
    if as_json {
        let doc = match values.as_slice() {
            [one] => one.clone(),
            _ => serde_json::Value::Array(values),
        };
        super::out(&serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    if all_valid { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// One token file: printed as text, or returned as JSON; and whether it is valid.
fn status_of(target: &Target, clock: &dyn Clock, as_json: bool) -> (bool, Option<serde_json::Value>) {
    if let Some(reason) = untrusted_dir(&target.token_file) {
        if as_json {
            let mut v = json!({ "token_file": target.token_file, "state": "untrusted", "error": reason });
            if let (Some(label), Some(obj)) = (&target.label, v.as_object_mut()) {
                obj.insert("account".into(), json!(label));
            }
            return (false, Some(v));
        }
        super::out(&format!("Token file  {}\nState       ❌ not trusted: {reason}", target.token_file.display()));
        return (false, None);
    }
    let store = TokenStore::new(&target.token_file);
    let now = clock.now();
    let loaded = store.load();
    let health = health_of(&target.token_file);
    let holder = lock_holder(&target.token_file);
    let (state, token, error) = match &loaded {
        Ok(Some(t)) => (verdict(t, health.as_ref(), now).as_str(), Some(t), None),
        Ok(None) => ("missing", None, None),
        Err(e @ StoreError::Corrupt { .. }) => ("corrupt", None, Some(e.to_string())),
        Err(e) => ("unreadable", None, Some(e.to_string())),
    };
    let seen = Seen {
        state,
        token,
        error,
        checked: health.as_ref().filter(|h| token.is_some_and(|t| t.expires_at == h.expires_at)),
        holder: holder.as_deref(),
    };
    let valid = state == "valid";
    if as_json {
        return (valid, Some(status_json(target, &store, &seen, now)));
    }
    status_text(target, &store, &seen, now);
    (valid, None)
}

/// What `status` found, for its two renderings.
struct Seen<'a> {
    state: &'static str,
    token: Option<&'a Token>,
    error: Option<String>,
    checked: Option<&'a TokenHealth>,
    holder: Option<&'a str>,
}

fn status_json(target: &Target, store: &TokenStore, seen: &Seen<'_>, now: DateTime<Utc>) -> serde_json::Value {
    let token = seen.token;
    let mode = target.mode.map(|m| match m {
        crate::config::Mode::Automatic => "automatic",
        crate::config::Mode::Consent => "consent",
    });
    let mut v = json!({
        "token_file": store.path(),
        "state": seen.state,
        "mode": mode,
        "client_id": token.and_then(|t| t.client_id.clone()),
        "expires_at": token.map(|t| ist::to_ist(&t.expires_at).to_rfc3339()),
        "expiry_time": token.map(|t| ist::naive_string(&t.expires_at)),
        "seconds_left": token.map(|t| t.remaining(now).num_seconds().max(0)),
        "obtained_at": token.and_then(|t| t.obtained_at.map(|o| o.to_rfc3339())),
        "source": token.and_then(|t| t.source.map(|s| s.to_string())),
        "dhan_accepted": seen.checked.map(|h| h.accepted),
        "checked_at": seen.checked.map(|h| h.checked_at.to_rfc3339()),
        "daemon": seen.holder,
        "error": seen.error,
    });
    if let (Some(label), Some(obj)) = (&target.label, v.as_object_mut()) {
        obj.insert("account".into(), json!(label));
    }
    v
}

fn status_text(target: &Target, store: &TokenStore, seen: &Seen<'_>, now: DateTime<Utc>) {
    super::out(&format!("Token file  {}", store.path().display()));
    if let Some(m) = &target.mode {
        super::out(&format!("Mode        {m}"));
    }
    super::out(&format!("Daemon      {}", seen.holder.unwrap_or("not running (no process holds the lock)")));
    let next = || super::out(&format!("Next        {}", advice_for(&target.token_file, seen.holder)));
    match (seen.state, seen.token) {
        ("valid", Some(t)) => print_token(t, "✅ valid", ist::human_duration(t.remaining(now)) + " left", seen.checked),
        ("rejected", Some(t)) => {
            print_token(
                t,
                "❌ rejected by Dhan",
                "revoked, e.g. by a newer token minted elsewhere".into(),
                seen.checked,
            );
            next();
        }
        ("expired", Some(t)) => {
            print_token(t, "❌ expired", format!("{} ago", ist::human_duration(-t.remaining(now))), None);
            next();
        }
        ("missing", _) => {
            super::out("State       ⚪ no token yet");
            next();
        }
        _ => super::out(&format!("State       ❌ {}: {}", seen.state, seen.error.clone().unwrap_or_default())),
    }
}

fn print_token(t: &Token, state: &str, left: String, checked: Option<&TokenHealth>) {
    super::out(&format!("State       {state} ({left})"));
    super::out(&format!("Expires     {} ({})", ist::human(&t.expires_at), ist::to_ist(&t.expires_at).to_rfc3339()));
    if let Some(o) = &t.obtained_at {
        let via = t.source.map(|s| format!(" via {s}")).unwrap_or_default();
        super::out(&format!("Obtained    {}{via}", ist::human(o)));
    }
    if let Some(h) = checked {
        let said = if h.accepted { "accepted it" } else { "REJECTED it" };
        super::out(&format!("Dhan        {said} at {}", ist::human(&h.checked_at)));
    }
    if let Some(c) = &t.client_id {
        super::out(&format!("Client      {c}"));
    }
}

/// `dhan-keeper token`: prints the access token for scripts; exit 1 when there is none usable
/// (missing, expired, or rejected by Dhan at the daemon's last check).
pub fn token(target: &Target, clock: &dyn Clock) -> ExitCode {
    if let Some(reason) = untrusted_dir(&target.token_file) {
        eprintln!("error: not printing a token from there: {reason}");
        return ExitCode::FAILURE;
    }
    let store = TokenStore::new(&target.token_file);
    let now = clock.now();
    let path = store.path().display();
    match store.load() {
        Ok(Some(t)) => match verdict(&t, health_of(&target.token_file).as_ref(), now) {
            Verdict::Valid => {
                super::out(t.access_token.expose());
                ExitCode::SUCCESS
            }
            Verdict::Rejected => {
                let holder = lock_holder(&target.token_file);
                eprintln!(
                    "error: Dhan rejected the token in {path} (revoked); {}",
                    advice_for(&target.token_file, holder.as_deref())
                );
                ExitCode::FAILURE
            }
            Verdict::Expired => {
                let holder = lock_holder(&target.token_file);
                eprintln!(
                    "error: the token in {path} expired at {}; {}",
                    ist::human(&t.expires_at),
                    advice_for(&target.token_file, holder.as_deref())
                );
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            let holder = lock_holder(&target.token_file);
            eprintln!("error: no token in {path}; {}", advice_for(&target.token_file, holder.as_deref()));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    #[test]
    fn the_verdict_uses_what_dhan_said_about_this_token_only() {
        let exp = ist::parse_naive_ist("2026-11-26T08:30:00").expect("time");
        let other = ist::parse_naive_ist("2026-11-25T08:30:00").expect("time");
        let t =
            Token { access_token: Secret::new("x"), expires_at: exp, client_id: None, obtained_at: None, source: None };
        let h = |expires_at, accepted| TokenHealth { expires_at, accepted, checked_at: exp };
        let before = at("2026-11-26T01:00:00Z");
        let after = at("2026-11-26T03:00:01Z");
        let table = [
            (None, before, Verdict::Valid),
            (Some(h(exp, true)), before, Verdict::Valid),
            (Some(h(exp, false)), before, Verdict::Rejected),
            (Some(h(other, false)), before, Verdict::Valid), // about an older token
            (Some(h(exp, true)), after, Verdict::Expired),
            (Some(h(exp, false)), after, Verdict::Expired),
        ];
        for (health, now, want) in table {
            assert_eq!(verdict(&t, health.as_ref(), now), want, "{health:?} at {now}");
        }
    }

    #[test]
    fn the_lock_holder_is_named_and_nothing_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("dhan_token.json");
        assert_eq!(lock_holder(&file), None, "no lock file");
        let held = crate::token::InstanceLock::acquire(&dir.path().join("dhan_token.json.lock"), "run").expect("lock");
        let holder = lock_holder(&file).expect("held");
        assert!(holder.starts_with("pid ") && holder.contains("run"), "{holder}");
        assert!(advice_with(Some(&holder), None).contains("running daemon"));
        drop(held);
        assert_eq!(lock_holder(&file), None);
        assert!(advice_with(None, None).contains("dhan-keeper run"));
    }
}
