//! The keeper's state that is not persisted, as explicit types: why an attempt gave no token
//! ([`RotateError`]), a rejection being confirmed ([`Suspicion`]), and the rest of what the loop
//! knows right now ([`Live`]).

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use crate::dhan::{DhanError, IpStatus};
use crate::ist;

/// Why no new token came out of an attempt.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// Inside Dhan's mint window (one mint per `cooldown`, counted from the last attempt).
    #[error(
        "Dhan allows one new token every {} counted from the last attempt{}; the next one can be minted at {}{}",
        humantime::format_duration(*.cooldown),
        if *.refused { " (Dhan just refused one, which restarts the window)" } else { "" },
        ist::human_secs(&ist::to_ist(.until)),
        .credentials.as_ref().map(|m| format!(". The last attempt failed: Dhan refused the credentials ({m}); fix them first")).unwrap_or_default()
    )]
    Cooldown {
        /// When minting is allowed again.
        until: DateTime<Utc>,
        /// The configured window.
        cooldown: Duration,
        /// Dhan refused the attempt (rather than the daemon holding it back).
        refused: bool,
        /// Dhan's words when the last attempt was refused for its credentials.
        credentials: Option<String>,
    },
    /// Dhan refused the credentials earlier; automatic minting is stopped until they change.
    #[error(
        "automatic minting is stopped: Dhan refused the credentials at {} ({message}). Fix pin, totp_secret or \
         client_id in the config (the stop lifts when they change), or press Refresh / run `dhan-keeper refresh` to try once more",
        ist::human(at)
    )]
    CredentialsStopped {
        /// When Dhan refused them.
        at: DateTime<FixedOffset>,
        /// Dhan's words.
        message: String,
    },
    /// Consent mode: a human has to log in.
    #[error("consent mode needs you to log in through the link")]
    NeedsLogin,
    /// Dhan rejected the current token once; it is being re-checked before anything is replaced.
    #[error("Dhan rejected the current token once; checking it again before replacing it")]
    Suspect,
    /// Dhan refused or failed.
    #[error("{0}")]
    Dhan(#[from] DhanError),
    /// Dhan issued a token this keeper cannot take (another account's, or already expired).
    #[error("{0}")]
    Refused(#[from] crate::token::Refused),
    /// The config lacks what this needs (e.g. `api_key` for a tokenId).
    #[error("{0}")]
    NotConfigured(&'static str),
    /// In a fleet, it is not this keeper's turn to get a token (see `docs/fleet.md`).
    #[error("{}", not_leader_text(*.waiting))]
    NotLeader {
        /// Why not.
        waiting: crate::fleet::Waiting,
        /// When the loop asks again (a lease change wakes it sooner).
        retry_at: DateTime<Utc>,
    },
}

fn not_leader_text(waiting: crate::fleet::Waiting) -> &'static str {
    match waiting {
        crate::fleet::Waiting::Follower => {
            "another keeper of the fleet holds the lease and mints; this one takes the shared token"
        }
        crate::fleet::Waiting::LeaseTooShort => "the fleet lease is being renewed; try again in a few seconds",
        crate::fleet::Waiting::RedisUnreachable => {
            "Redis is unreachable from this host, so rotation is held (no keeper mints without the fleet lease). If no \
             host can reach Redis, send /refresh force to mint here anyway; if another host still can, it may lead \
             and mint, and a second mint would kill its token"
        }
    }
}

impl RotateError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            RotateError::Cooldown { .. } => "cooldown",
            RotateError::CredentialsStopped { .. } => "credentials_stopped",
            RotateError::NeedsLogin => "needs_login",
            RotateError::Suspect => "suspect",
            RotateError::Dhan(e) => e.reason(),
            RotateError::Refused(crate::token::Refused::WrongClient { .. }) => "wrong_client",
            RotateError::Refused(crate::token::Refused::AlreadyExpired) => "already_expired",
            RotateError::NotConfigured(_) => "not_configured",
            RotateError::NotLeader { .. } => "not_leader",
        }
    }
}

/// A rejection of a token that should be alive, not yet confirmed.
#[derive(Debug, Clone, PartialEq)]
pub struct Suspicion {
    /// Rejections in a row so far.
    pub rejections: u32,
    /// When the first one came.
    pub first_at: DateTime<Utc>,
    /// When the last probe was made.
    pub last_at: DateTime<Utc>,
    /// Dhan's words.
    pub message: String,
}

/// What the daemon knows right now but does not persist.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Failed attempts in a row.
    pub failures: u32,
    /// When the last one failed.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Why, in plain words.
    pub last_error: Option<String>,
    /// Whether the failure alert for this streak went out.
    pub failure_alerted: bool,
    /// RenewToken refused the token that expires at this instant.
    pub renew_refused_for: Option<DateTime<FixedOffset>>,
    /// Dhan rejects the current token although it should be alive (confirmed by re-probes).
    pub revoked: bool,
    /// Dhan rejected the current token, not yet confirmed.
    pub suspect: Option<Suspicion>,
    /// Outcome of the last call to Dhan's api host.
    pub dhan_reachable: Option<bool>,
    /// When the token was last checked with `/v2/profile`.
    pub last_verify: Option<DateTime<Utc>>,
    /// When the loop plans to rotate next.
    pub next_rotation: Option<DateTime<Utc>>,
    /// When the next alert is due.
    pub next_alert: Option<DateTime<Utc>>,
    /// The current token is not on disk (a write failed); retried every pass of the loop.
    pub unsaved: bool,
    /// What `GET /v2/ip/getIP` said last (or why it could not be asked).
    pub ip: Option<Result<IpStatus, String>>,
    /// When it was asked.
    pub ip_checked_at: Option<DateTime<Utc>>,
    /// Mint attempts in a row whose TOTP codes Dhan refused (each attempt already retried once
    /// in the next TOTP step).
    pub totp_refusals: u32,
    /// The token (by expiry) for which "the next attempt comes after expiry" was already said.
    pub gap_alerted_for: Option<DateTime<FixedOffset>>,
    /// When a consent login link was last made for this account (a tokenId pasted soon after
    /// is its answer); cleared when a token is taken in.
    pub login_sent_at: Option<DateTime<Utc>>,
}
