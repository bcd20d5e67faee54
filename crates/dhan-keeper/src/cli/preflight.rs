//! `check`'s local checks: what would fail later, found now. The token directory must exist and
//! be writable (else the first rotation cannot be saved), `on_refresh` must exist and be
//! executable (else it fails after every rotation), and `http_token` must not still be a
//! placeholder (anyone who reads the example would know it). Also the plan: market hours in
//! effect, the next rotation and the next alert for the saved token.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::config::{Config, Mode};
use crate::ist;
use crate::policy::{self, PolicyConfig};
use crate::token::Token;

/// One line of `check`'s output: whether it passed and what to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// ✅ (true) or ❌ (false).
    pub ok: bool,
    /// The label column.
    pub label: &'static str,
    /// The rest of the line.
    pub text: String,
}

fn line(ok: bool, label: &'static str, text: String) -> Line {
    Line { ok, label, text }
}

/// Whether `value` is a placeholder nobody should keep: the example's `YOUR_…`, or a word that
/// means "fill me in". Pure, table-tested.
pub(crate) fn is_placeholder(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    let words = [
        "",
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "token",
        "password",
        "example",
        "xxx",
        "todo",
        "placeholder",
    ];
    v.starts_with("your_")
        || v.starts_with("your-")
        || v.starts_with('<')
        || v.contains("changeme")
        || v.contains("change_me")
        || v.contains("example")
        || v.chars().all(|c| c == 'x' || c == '.' || c == '*')
        || words.contains(&v.as_str())
}

/// The token file's directory exists, is a directory and takes a new file.
pub(crate) fn token_dir(token_file: &Path) -> Line {
    let dir = match token_file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let shown = dir.display();
    match std::fs::metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => line(
            false,
            "Token dir",
            format!("{shown} does not exist; create it (mkdir -p {shown}) or change token_file"),
        ),
        Err(e) => line(false, "Token dir", format!("{shown}: {e}")),
        Ok(m) if !m.is_dir() => line(false, "Token dir", format!("{shown} is not a directory; change token_file")),
        // Some bytes, not just a name: a full disk still lets an empty file be created.
        Ok(_) => match tempfile::Builder::new()
            .prefix(".dhan-keeper-check-")
            .tempfile_in(&dir)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &[0u8; 4096]).and_then(|()| f.as_file().sync_all()))
        {
            Ok(()) => line(true, "Token dir", format!("{shown} is writable")),
            Err(e) => line(
                false,
                "Token dir",
                format!("cannot create files in {shown} ({e}); the daemon must write the token there (chown/chmod it)"),
            ),
        },
    }
}

/// Where `program` resolves: itself when it has a `/`, else the first match on `path_var`.
pub(crate) fn resolve(program: &str, path_var: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::split_paths(path_var?).map(|d| d.join(program)).find(|p| p.is_file())
}

#[cfg(unix)]
fn executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn executable(_: &std::fs::Metadata) -> bool {
    true
}

/// `on_refresh`'s program exists and is executable.
pub(crate) fn hook(argv: &[String], path_var: Option<&std::ffi::OsStr>) -> Option<Line> {
    let program = argv.first()?;
    let Some(path) = resolve(program, path_var) else {
        return Some(line(false, "on_refresh", format!("{program:?} is not on PATH; give the full path")));
    };
    Some(match std::fs::metadata(&path) {
        Err(e) => line(false, "on_refresh", format!("{}: {e}; it would fail after every rotation", path.display())),
        Ok(m) if !m.is_file() => line(false, "on_refresh", format!("{} is not a file", path.display())),
        Ok(m) if !executable(&m) => {
            line(false, "on_refresh", format!("{} is not executable (chmod +x {})", path.display(), path.display()))
        }
        Ok(_) => line(true, "on_refresh", format!("{} runs after every new token", path.display())),
    })
}

/// `http_token` is set to something real when `http_listen` is set.
pub(crate) fn http_token(cfg: &Config) -> Option<Line> {
    let listen = cfg.http_listen?;
    Some(match &cfg.http_token {
        Some(t) if is_placeholder(t.expose()) => line(
            false,
            "HTTP",
            format!("http_token for {listen} is a placeholder; set a long random value (openssl rand -hex 32)"),
        ),
        Some(_) => line(true, "HTTP", format!("/token on {listen}, bearer token required")),
        None => line(true, "HTTP", format!("/healthz and /metrics on {listen}; /token is off until http_token is set")),
    })
}

/// The plan for the saved token: market hours in effect, next rotation, next alert.
pub(crate) fn plan(
    cfg: &Config,
    token: Option<&Token>,
    last_mint: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<String> {
    let p = PolicyConfig::from_config(cfg);
    let mut out = vec![match &cfg.market_hours {
        Some(crate::config::MarketChoice::Window(mh)) => format!(
            "Market hours {}–{} IST, Mon–Fri: no rotation inside them",
            mh.open.format("%H:%M"),
            mh.close.format("%H:%M")
        ),
        Some(crate::config::MarketChoice::Segments(s)) => {
            format!("Market hours: every {s} session in the exchange calendar (holidays and special sessions included)")
        }
        None => "Market hours off: rotation at any time".to_string(),
    }];
    let when = |t: DateTime<Utc>| crate::replies::when(t, now);
    let live = token.filter(|t| !t.is_expired(now));
    let exp = live.map(|t| t.expires_at.with_timezone(&Utc));
    let stop = crate::state::StateFile::peek(&cfg.token_file)
        .and_then(|s| s.credentials_refused)
        .filter(|s| s.config_id == cfg.credentials_id());
    if let (Mode::Automatic, Some(stop)) = (cfg.mode(), stop) {
        out.push(format!(
            "Next rotation none: automatic minting is stopped since Dhan refused these credentials at {} ({}); \
             fix pin, totp_secret or client_id (the stop lifts when they change) or press Refresh on Telegram",
            ist::human(&stop.at),
            crate::harden::sanitize(&stop.message, 200)
        ));
        return out;
    }
    match (cfg.mode(), exp) {
        (Mode::Automatic, Some(e)) => {
            out.push(format!("Next rotation {}", when(policy::next_rotation(now, Some(e), last_mint, &p))));
            if let Some(a) = policy::next_alert_at(e, None, &p) {
                out.push(format!("Next alert   {} — only if rotation has failed by then", when(a)));
            }
        }
        (Mode::Automatic, None) => out.push("Next rotation at once when `run` starts (no valid token saved)".into()),
        (Mode::Consent, Some(e)) => {
            if let Some(a) = policy::next_alert_at(e, None, &p) {
                out.push(format!("Next alert   {} with a login link (consent mode needs you)", when(a)));
            }
        }
        (Mode::Consent, None) => out.push("Next alert   at once when `run` starts: log in through the link".into()),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_caught_and_real_values_pass() {
        for p in
            ["YOUR_HTTP_TOKEN", "your-token", "<token>", "changeme", "secret", "xxxxxxxx", "...", "", "example-token"]
        {
            assert!(is_placeholder(p), "{p:?} is a placeholder");
        }
        for real in ["9f2c1e7a5b3d4c6e8f0a1b2c3d4e5f60", "correct horse battery staple", "k3ep-1t-s3cret-Ly"] {
            assert!(!is_placeholder(real), "{real:?} is real");
        }
    }

    #[test]
    fn the_token_dir_must_exist_and_be_writable() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(token_dir(&dir.path().join("dhan_token.json")).ok);
        let missing = token_dir(&dir.path().join("nope/dhan_token.json"));
        assert!(!missing.ok && missing.text.contains("does not exist"), "{missing:?}");
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").expect("write");
        let not_dir = token_dir(&file.join("dhan_token.json"));
        assert!(!not_dir.ok && not_dir.text.contains("not a directory"), "{not_dir:?}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1, "the probe file is removed");
    }

    #[cfg(unix)]
    #[test]
    fn the_hook_must_exist_and_be_executable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("reload.sh");
        std::fs::write(&script, "#!/bin/sh\n").expect("write");
        let argv = |p: &Path| vec![p.display().to_string()];
        let not_exec = hook(&argv(&script), None).expect("line");
        assert!(!not_exec.ok && not_exec.text.contains("chmod +x"), "{not_exec:?}");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(hook(&argv(&script), None).expect("line").ok);
        let gone = hook(&argv(&dir.path().join("gone.sh")), None).expect("line");
        assert!(!gone.ok, "{gone:?}");
        let path = std::ffi::OsString::from(dir.path());
        assert!(hook(&["reload.sh".into()], Some(&path)).expect("line").ok, "found on PATH");
        assert!(!hook(&["nowhere-xyz".into()], Some(&path)).expect("line").ok);
        assert!(hook(&[], None).is_none());
    }
}
