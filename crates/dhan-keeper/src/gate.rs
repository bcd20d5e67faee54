//! Whether a mint may be attempted now: Dhan's window and the credential stop. Pure.
//!
//! Live reports (reference §8b.2) show that a mint refused inside Dhan's 2-minute window
//! *restarts* the window, and that a retry loop tuned to the TOTP step stayed locked out for two
//! trading days. So the window is measured from the last *attempt or refusal*, which the callers
//! persist before each request and again when the answer comes back, with the configured
//! `mint_cooldown` (default 125 s: 120 s plus a margin) on every path. A persisted instant in the
//! future (the clock jumped ahead while it was written) is never trusted: it counts as "now".
//!
//! Credentials Dhan refuses (wrong PIN, unknown client, TOTP not set up) stop automatic minting
//! for the config that was refused; the admin lifts the stop by fixing the config or by asking
//! for a token (Telegram /refresh, `dhan-keeper refresh`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::state::{CredentialStop, DaemonState};

/// What stands between now and a mint.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// A mint may be attempted now.
    Open,
    /// Inside Dhan's window: not before `until`.
    Window {
        /// When the window ends.
        until: DateTime<Utc>,
    },
    /// Dhan refused these credentials; automatic minting is stopped.
    CredentialsRefused(CredentialStop),
}

/// Who asks for the mint: the schedule honours the credential stop, an admin lifts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    /// The daemon's own schedule (or a revoked token being replaced).
    Schedule,
    /// A person: `/refresh`, the Refresh button, `dhan-keeper refresh`.
    Admin,
    /// A person who also said `force` (`/refresh force`): in a fleet whose Redis this host
    /// cannot reach, the one way to mint without the lease. Otherwise as [`Asker::Admin`].
    AdminForced,
}

/// The last attempt as the gate counts it: never later than `now`.
pub fn last_attempt(state: &DaemonState, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    state.last_mint_at.map(|t| t.with_timezone(&Utc).min(now))
}

/// Whether the persisted last attempt lies in the future (the clock was ahead when it was
/// written); the caller rewrites it to `now` so the window does not slide forever.
pub fn attempt_in_future(state: &DaemonState, now: DateTime<Utc>) -> bool {
    state.last_mint_at.is_some_and(|t| t.with_timezone(&Utc) > now)
}

/// When Dhan's window ends, if it has not yet.
pub fn window_until(state: &DaemonState, now: DateTime<Utc>, cooldown: Duration) -> Option<DateTime<Utc>> {
    let until = last_attempt(state, now)?.checked_add_signed(chrono::Duration::from_std(cooldown).ok()?)?;
    (until > now).then_some(until)
}

/// The gate for a mint asked by `asker` at `now` for the credentials `config_id`.
pub fn mint_gate(state: &DaemonState, now: DateTime<Utc>, cooldown: Duration, config_id: &str, asker: Asker) -> Gate {
    if asker == Asker::Schedule
        && let Some(stop) = state.credentials_refused.as_ref().filter(|s| s.config_id == config_id)
    {
        return Gate::CredentialsRefused(stop.clone());
    }
    match window_until(state, now, cooldown) {
        Some(until) => Gate::Window { until },
        None => Gate::Open,
    }
}

/// The credential stop that applies to `config_id`, if any.
pub fn credential_stop<'a>(state: &'a DaemonState, config_id: &str) -> Option<&'a CredentialStop> {
    state.credentials_refused.as_ref().filter(|s| s.config_id == config_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ist;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
    }

    fn state(last: Option<&str>, stop_for: Option<&str>) -> DaemonState {
        DaemonState {
            last_mint_at: last.map(|l| ist::to_ist(&at(l))),
            credentials_refused: stop_for.map(|id| CredentialStop {
                at: ist::to_ist(&at("2026-11-30T03:00:00Z")),
                message: "Login failed".into(),
                config_id: id.into(),
            }),
            ..DaemonState::default()
        }
    }

    #[test]
    fn the_gate_follows_the_last_attempt_the_stop_and_the_asker() {
        let cd = Duration::from_secs(125);
        let now = at("2026-11-30T03:10:00Z");
        let cases: [(&str, DaemonState, Asker, Gate); 7] = [
            ("never minted", state(None, None), Asker::Schedule, Gate::Open),
            ("window over", state(Some("2026-11-30T03:07:00Z"), None), Asker::Schedule, Gate::Open),
            (
                "inside the window",
                state(Some("2026-11-30T03:09:00Z"), None),
                Asker::Schedule,
                Gate::Window { until: at("2026-11-30T03:11:05Z") },
            ),
            (
                "a future attempt counts as now",
                state(Some("2026-12-01T03:10:00Z"), None),
                Asker::Schedule,
                Gate::Window { until: at("2026-11-30T03:12:05Z") },
            ),
            (
                "stopped for this config",
                state(None, Some("abc")),
                Asker::Schedule,
                Gate::CredentialsRefused(
                    state(None, Some("abc")).credentials_refused.unwrap_or_else(|| unreachable!()),
                ),
            ),
            ("a changed config lifts the stop", state(None, Some("old")), Asker::Schedule, Gate::Open),
            ("an admin lifts the stop", state(None, Some("abc")), Asker::Admin, Gate::Open),
        ];
        for (name, st, asker, want) in cases {
            assert_eq!(mint_gate(&st, now, cd, "abc", asker), want, "{name}");
        }
    }

    #[test]
    fn an_admin_still_waits_for_the_window_and_absurd_instants_do_not_overflow() {
        let now = at("2026-11-30T03:10:00Z");
        let st = state(Some("2026-11-30T03:09:30Z"), Some("abc"));
        assert!(matches!(mint_gate(&st, now, Duration::from_secs(125), "abc", Asker::Admin), Gate::Window { .. }));
        assert!(attempt_in_future(&state(Some("2026-11-30T03:10:01Z"), None), now));
        let ancient = DaemonState {
            last_mint_at: Some(DateTime::<chrono::FixedOffset>::MIN_UTC.fixed_offset()),
            ..DaemonState::default()
        };
        assert_eq!(window_until(&ancient, now, Duration::from_secs(125)), None);
    }
}
