//! `on_refresh`: run the trader's command after each new token.
//!
//! The command is an argv list run directly, never through a shell. The token reaches it only in
//! its environment (`DHAN_ACCESS_TOKEN`, `DHAN_TOKEN_EXPIRY`, `DHAN_CLIENT_ID`), never in argv
//! where `ps` would show it. It is killed after `hook_timeout`. Its failure is reported, not fatal.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::ist;
use crate::token::Token;

/// Why the hook did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// It could not be started.
    #[error("on_refresh command {program:?} could not start: {source}")]
    Spawn {
        /// argv[0].
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// It exited unsuccessfully.
    #[error("on_refresh command {program:?} failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    Failed {
        /// argv[0].
        program: String,
        /// Exit status.
        status: std::process::ExitStatus,
        /// The last of its stderr, one line.
        stderr: String,
    },
    /// It ran too long and was killed.
    #[error("on_refresh command {program:?} did not finish within {}s and was killed", timeout.as_secs())]
    TimedOut {
        /// argv[0].
        program: String,
        /// The limit.
        timeout: Duration,
    },
}

/// Runs `argv` with the token in its environment; waits at most `timeout`.
pub async fn run(argv: &[String], token: &Token, client_id: &str, timeout: Duration) -> Result<(), HookError> {
    let Some((program, args)) = argv.split_first() else {
        return Ok(());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("DHAN_ACCESS_TOKEN", token.access_token.expose())
        .env("DHAN_TOKEN_EXPIRY", ist::to_ist(&token.expires_at).to_rfc3339())
        .env("DHAN_CLIENT_ID", token.client_id.as_deref().unwrap_or(client_id))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|source| HookError::Spawn { program: program.clone(), source })?;
    tracing::debug!(pid = child.id(), "on_refresh started");
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(HookError::TimedOut { program: program.clone(), timeout }),
        Ok(Err(source)) => Err(HookError::Spawn { program: program.clone(), source }),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let text = String::from_utf8_lossy(&out.stderr);
            // Never repeat the token, even if the hook printed it.
            let text = text.replace(token.access_token.expose(), "[redacted]");
            let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
            Err(HookError::Failed { program: program.clone(), status: out.status, stderr: crate::dhan::clip(last) })
        }
    }
}
