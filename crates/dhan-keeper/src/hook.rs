//! `on_refresh`: run the trader's command after each new token.
//!
//! The command is an argv list run directly, never through a shell. The token reaches it only in
//! its environment (`DHAN_ACCESS_TOKEN`, `DHAN_TOKEN_EXPIRY`, `DHAN_CLIENT_ID`), never in argv
//! where `ps` would show it. It is killed after `hook_timeout`. Its failure is reported, not fatal.
//!
//! The daemon's own environment may hold every secret (`DHAN_KEEPER_PIN`, ... is the documented
//! way to pass them), so the hook gets a clean one: [`INHERITED`] plus the token variables. What
//! it prints on stderr is kept in memory only up to [`KEPT_OUTPUT`] bytes (its tail), and every
//! configured secret and the token are blanked out of it before it reaches the log or Telegram.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::config::Config;
use crate::ist;
use crate::token::Token;

/// The variables passed through from the daemon's environment; nothing else is.
pub const INHERITED: &[&str] = &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];

/// How much of the hook's stderr is kept (the last bytes); the rest is read and discarded.
pub const KEPT_OUTPUT: usize = 16 * 1024;

/// Why the hook did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// It could not be started.
    #[error("on_refresh command {program:?} could not start: {source}")]
    Spawn {
        /// The program (the first word of the command).
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// It exited unsuccessfully.
    #[error("on_refresh command {program:?} failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    Failed {
        /// The program (the first word of the command).
        program: String,
        /// Exit status.
        status: std::process::ExitStatus,
        /// The last of its stderr, one line, secrets blanked.
        stderr: String,
    },
    /// It ran too long and was killed.
    #[error("on_refresh command {program:?} did not finish within {}s and was killed", timeout.as_secs())]
    TimedOut {
        /// The program (the first word of the command).
        program: String,
        /// The limit.
        timeout: Duration,
    },
}

/// Every secret in `cfg`, as text that must never be repeated.
pub fn secrets_of(cfg: &Config) -> Vec<String> {
    let mut out: Vec<String> = [&cfg.pin, &cfg.api_key, &cfg.api_secret, &cfg.telegram_bot_token, &cfg.http_token]
        .into_iter()
        .flatten()
        .map(|s| s.expose().to_string())
        .collect();
    if let Some(t) = &cfg.totp_secret {
        let b32 = t.to_base32();
        out.push(b32.to_ascii_lowercase());
        out.push(b32);
    }
    if let Some(fleet) = &cfg.fleet {
        out.extend(fleet.secret_texts());
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Whose token a hook gets: besides the token variables, a hook shared by several accounts
/// learns the account's label (`DHAN_KEEPER_ACCOUNT`) and its token file (`DHAN_TOKEN_FILE`).
#[derive(Debug, Clone)]
pub struct Whose {
    /// The configured client id (used when the token does not name one).
    pub client_id: String,
    /// The account's label, when the config lists accounts.
    pub account: Option<String>,
    /// The account's token file.
    pub token_file: std::path::PathBuf,
}

/// Runs `argv` with the token in its environment; waits at most `timeout`. `secrets` are blanked
/// out of anything it printed.
pub async fn run(
    argv: &[String],
    token: &Token,
    whose: &Whose,
    timeout: Duration,
    secrets: &[String],
) -> Result<(), HookError> {
    let client_id = whose.client_id.as_str();
    let Some((program, args)) = argv.split_first() else {
        return Ok(());
    };
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear();
    for key in INHERITED {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
    }
    cmd.env("DHAN_ACCESS_TOKEN", token.access_token.expose())
        .env("DHAN_TOKEN_EXPIRY", ist::to_ist(&token.expires_at).to_rfc3339())
        .env("DHAN_CLIENT_ID", token.client_id.as_deref().unwrap_or(client_id))
        .env("DHAN_TOKEN_FILE", &whose.token_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(account) = &whose.account {
        cmd.env("DHAN_KEEPER_ACCOUNT", account);
    }
    let mut child = cmd.spawn().map_err(|source| HookError::Spawn { program: program.clone(), source })?;
    tracing::debug!(pid = child.id(), "on_refresh started");
    let stderr = child.stderr.take();
    let work = async {
        let tail = match stderr {
            Some(pipe) => read_tail(pipe, KEPT_OUTPUT).await,
            None => Vec::new(),
        };
        child.wait().await.map(|status| (status, tail))
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Err(HookError::TimedOut { program: program.clone(), timeout }),
        Ok(Err(source)) => Err(HookError::Spawn { program: program.clone(), source }),
        Ok(Ok((status, _))) if status.success() => Ok(()),
        Ok(Ok((status, tail))) => {
            let text = scrub(&String::from_utf8_lossy(&tail), token.access_token.expose(), secrets);
            let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
            Err(HookError::Failed { program: program.clone(), status, stderr: crate::dhan::clip(last) })
        }
    }
}

/// Reads `pipe` to its end, keeping only the last `keep` bytes.
async fn read_tail(mut pipe: impl tokio::io::AsyncRead + Unpin, keep: usize) -> Vec<u8> {
    let mut tail = Vec::with_capacity(keep);
    let mut buf = vec![0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return tail,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > keep {
                    tail.drain(..tail.len() - keep);
                }
            }
        }
    }
}

/// Blanks the token and every secret out of `text`.
fn scrub(text: &str, token: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in std::iter::once(token).chain(secrets.iter().map(String::as_str)).filter(|s| !s.is_empty()) {
        out = out.replace(s, "[redacted]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_blanks_every_secret() {
        let s = scrub("pin=918273 tok=eyJ.a.b bot=7:AAH", "eyJ.a.b", &["918273".into(), "7:AAH".into()]);
        assert_eq!(s, "pin=[redacted] tok=[redacted] bot=[redacted]");
    }

    #[tokio::test]
    async fn only_the_tail_is_kept() {
        let data = vec![b'a'; 100_000];
        let tail = read_tail(&data[..], 1000).await;
        assert_eq!(tail.len(), 1000);
    }
}
