//! What the daemon must remember across restarts besides the token: paused or not, the Telegram
//! offset, which alert step was already sent for which token, and the last mint.
//!
//! Kept beside the token file as `<token file>.state` and written atomically (0600) on every
//! change, so a kill -9 never re-sends an alert, re-handles a Telegram command or mints twice
//! inside Dhan's 2-minute window. Unlike the token, it is not fsynced: it is written before every
//! command is handled, and a disk flush there would put the disk's latency into every reply; a
//! power cut (not a crash) may at worst repeat one alert or one command. A missing or unreadable
//! file is not fatal: it is set aside and the daemon starts from defaults.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::policy::AlertStep;

/// Which alert step went out for which token (`expires_at` `None`: "no token at all").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alerted {
    /// Expiry of the token the alert was about.
    pub expires_at: Option<DateTime<FixedOffset>>,
    /// The most advanced step sent.
    pub step: AlertStep,
}

/// The outcome of the last attempt to get a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it finished.
    pub at: DateTime<FixedOffset>,
    /// Whether it produced a token.
    pub ok: bool,
    /// What happened, in plain words (never a secret).
    pub what: String,
}

/// Dhan refused the credentials: automatic minting stays stopped for the config that was refused,
/// so a wrong PIN is not retried until the broker locks the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialStop {
    /// When Dhan refused them.
    pub at: DateTime<FixedOffset>,
    /// Dhan's words (never a secret).
    pub message: String,
    /// [`Config::credentials_id`](crate::config::Config::credentials_id) of the refused config:
    /// a changed PIN, TOTP secret or client id lifts the stop.
    pub config_id: String,
}

/// What the daemon last learnt from Dhan about the token in the token file, so `status` and
/// `token` (separate processes) can tell a token Dhan rejects from a valid one. The token is named
/// by its expiry, never stored here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenHealth {
    /// Expiry of the token this is about.
    pub expires_at: DateTime<FixedOffset>,
    /// Whether Dhan accepted it the last time it was asked.
    pub accepted: bool,
    /// When that was.
    pub checked_at: DateTime<FixedOffset>,
}

/// The persisted daemon state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DaemonState {
    /// `/pause`d: no automatic rotation and no alerts.
    pub paused: bool,
    /// The next Telegram update id to ask for.
    pub telegram_offset: i64,
    /// The alert ladder's progress for the current token.
    pub alerted: Option<Alerted>,
    /// When we last called `generateAccessToken` or Dhan last refused it (successfully or not):
    /// Dhan's window runs from the last attempt, and a refusal inside it restarts it.
    pub last_mint_at: Option<DateTime<FixedOffset>>,
    /// The last rotation attempt.
    pub last_attempt: Option<Attempt>,
    /// Set when Dhan refused the credentials; cleared by a new token or a changed config.
    pub credentials_refused: Option<CredentialStop>,
    /// The IST date the admin was last told that Dhan does not allow orders from this machine.
    pub ip_alerted_on: Option<chrono::NaiveDate>,
    /// The calendar data end already announced on Telegram (announced once per end date).
    pub calendar_notice_for: Option<chrono::NaiveDate>,
    /// Dhan's verdict on the current token (absent: never checked, or an older daemon).
    pub token_health: Option<TokenHealth>,
}

impl DaemonState {
    /// Drops instants no clock could have produced (a hand-edited or damaged file), so that
    /// adding a cooldown or a day to them cannot overflow (it used to panic on every start).
    fn sane(mut self) -> Self {
        fn ok(t: &DateTime<FixedOffset>) -> bool {
            use chrono::Datelike;
            (1970..=9999).contains(&t.year())
        }
        let mut dropped = Vec::new();
        if self.last_mint_at.as_ref().is_some_and(|t| !ok(t)) {
            self.last_mint_at = None;
            dropped.push("last_mint_at");
        }
        if self.alerted.as_ref().and_then(|a| a.expires_at.as_ref()).is_some_and(|t| !ok(t)) {
            self.alerted = None;
            dropped.push("alerted");
        }
        if self.last_attempt.as_ref().is_some_and(|a| !ok(&a.at)) {
            self.last_attempt = None;
            dropped.push("last_attempt");
        }
        if !dropped.is_empty() {
            tracing::warn!(?dropped, "the daemon state file held impossible values; ignored them");
        }
        self
    }
}

/// The state file and its in-memory copy.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    inner: Mutex<DaemonState>,
}

impl StateFile {
    /// The state file that belongs with `token_file`.
    pub fn path_for(token_file: &Path) -> PathBuf {
        let mut name = token_file.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "dhan_token.json".into());
        name.push(".state");
        token_file.with_file_name(name)
    }

    /// Loads the state, or defaults when the file is missing or unreadable (logged, set aside).
    pub fn load(path: PathBuf) -> Self {
        let state = match crate::harden::read_capped(&path, 1024 * 1024) {
            Ok(bytes) => match serde_json::from_slice::<DaemonState>(&bytes) {
                Ok(s) => s.sane(),
                Err(e) => {
                    let aside = path.with_extension("state.corrupt");
                    let _ = std::fs::rename(&path, &aside);
                    tracing::warn!(path = %path.display(), error = %e, aside = %aside.display(),
                        "daemon state file is unreadable; starting from defaults (at worst one alert repeats)");
                    DaemonState::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DaemonState::default(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the daemon state file; starting from defaults");
                DaemonState::default()
            }
        };
        Self { path, inner: Mutex::new(state) }
    }

    /// Reads the state another process (the daemon) keeps, for `status`, `token` and `check`:
    /// read-only, so an unreadable file is "nothing known" and is left where it is.
    pub fn peek(token_file: &Path) -> Option<DaemonState> {
        let bytes = crate::harden::read_capped(&Self::path_for(token_file), 256 * 1024).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// A copy of the current state.
    pub fn get(&self) -> DaemonState {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DaemonState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state and writes it out when it changed. A failed write is logged; the
    /// in-memory state still changes so the daemon behaves consistently until the disk recovers.
    pub fn update(&self, change: impl FnOnce(&mut DaemonState)) {
        let mut guard = self.lock();
        let before = guard.clone();
        change(&mut guard);
        if *guard == before {
            return;
        }
        let body = serde_json::to_vec_pretty(&*guard).unwrap_or_default();
        if let Err((op, e)) = crate::token::write_atomic(&self.path, &body, false) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot {op} the daemon state file");
        }
    }
}
