//! What the keeper does next, and when: a pure function of a snapshot of its state.
//!
//! The loop in [`crate::lifecycle`] takes a [`Snapshot`] (the token, the failure streak, the
//! suspicion, the mint gate, the alert ladder's progress), asks [`plan`], performs the one
//! [`Action`] that is due, and asks again; with nothing due it sleeps until [`Plan::wake`]. Every
//! rule that used to be decided by hand in the loop lives here and is table-tested without a
//! runtime: the verify cadence and the re-probe after a rejection, the static-IP check, renew
//! versus mint, the mint window and the credential stop (through [`crate::gate`]), the retry
//! backoff with its jitter, and the ladder's gating in automatic versus consent mode.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::Mode;
use crate::gate::Gate;
use crate::policy::{self, AlertStep, PolicyConfig};

/// The longest the loop sleeps before looking at the clock again.
pub const MAX_NAP: Duration = Duration::from_secs(30);

/// How often the keeper looks at things besides rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// `/v2/profile` check of a live token.
    pub verify_every: Duration,
    /// Re-check after a rejection.
    pub reprobe_after: Duration,
    /// `getIP` check.
    pub ip_check_every: Duration,
}

/// The usable token, as the planner needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usable {
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// Whether it would be renewed (RenewToken) rather than minted over.
    pub renewable: bool,
}

/// Everything [`plan`] looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Now, by the keeper's clock.
    pub now: DateTime<Utc>,
    /// Automatic (TOTP + PIN) or consent.
    pub mode: Mode,
    /// `/pause`d.
    pub paused: bool,
    /// The token file could not be written (retry every second).
    pub unsaved: bool,
    /// A token that is present, unexpired and not revoked.
    pub usable: Option<Usable>,
    /// The current token's expiry for the ladder, even once expired; `None` when there is no
    /// token or Dhan revoked it.
    pub ladder_expiry: Option<DateTime<Utc>>,
    /// When the token was last checked.
    pub last_verify: Option<DateTime<Utc>>,
    /// When the last probe of a suspected (rejected once) token was made.
    pub suspect_since: Option<DateTime<Utc>>,
    /// When `getIP` was last asked.
    pub ip_checked_at: Option<DateTime<Utc>>,
    /// Failed attempts in a row and when the last one failed.
    pub failures: u32,
    /// When the last failure was.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// The mint gate for the schedule.
    pub gate: Gate,
    /// Whether alerts can be sent at all (Telegram configured).
    pub alerts_enabled: bool,
    /// The ladder step already sent for `ladder_expiry`.
    pub alert_sent: Option<AlertStep>,
}

/// One thing to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Check the token with `/v2/profile` (also the re-probe of a suspected token).
    Verify,
    /// Ask `getIP` whether orders from here are allowed.
    CheckIp,
    /// Renew or mint.
    Rotate,
    /// Send this step of the expiry ladder.
    Alert(AlertStep),
}

/// The answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// What to do now, if anything.
    pub action: Option<Action>,
    /// When to ask again if nothing else happens.
    pub wake: DateTime<Utc>,
    /// When the next rotation is planned (`None`: not by the keeper).
    pub next_rotation: Option<DateTime<Utc>>,
    /// When the next ladder alert is due.
    pub next_alert: Option<DateTime<Utc>>,
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::zero())
}

/// The retry instant for a failure streak: the backoff from the last failure, with jitter fixed
/// by that failure's instant (so the plan does not move each time the loop wakes). A failure
/// stamped in the future (the clock went back) counts as now.
pub fn next_retry(
    failures: u32,
    last_failure_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    cfg: &PolicyConfig,
) -> Option<DateTime<Utc>> {
    let at = last_failure_at?.min(now);
    let jitter = f64::from(at.timestamp_subsec_nanos() % 1000) / 1000.0;
    at.checked_add_signed(chrono(policy::backoff(failures, jitter, cfg)))
}

/// When the next rotation is due: renewal of a token Dhan renews, else a mint behind the gate;
/// `None` when a human must act (consent mode) or minting is stopped.
pub fn rotation_due(s: &Snapshot, cfg: &PolicyConfig) -> Option<DateTime<Utc>> {
    let renew = s.usable.is_some_and(|u| u.renewable);
    if !renew && (s.mode == Mode::Consent || matches!(s.gate, Gate::CredentialsRefused(_))) {
        return None;
    }
    let mut due = policy::next_rotation(s.now, s.usable.map(|u| u.expires_at), None, cfg);
    if let Some(retry) = next_retry(s.failures, s.last_failure_at, s.now, cfg) {
        due = due.max(retry);
    }
    if let (false, Gate::Window { until }) = (renew, &s.gate) {
        due = due.max(*until);
    }
    Some(due)
}

/// Whether the ladder runs: always in consent mode; in automatic mode once rotation has failed
/// or minting is stopped (a healthy automatic keeper does not nag).
fn ladder_runs(s: &Snapshot) -> bool {
    s.alerts_enabled && (s.mode == Mode::Consent || s.failures > 0 || matches!(s.gate, Gate::CredentialsRefused(_)))
}

/// What to do next, and when.
pub fn plan(s: &Snapshot, cfg: &PolicyConfig, cadence: &Cadence) -> Plan {
    let now = s.now;
    let mut wake = now + chrono(if s.unsaved { Duration::from_secs(1) } else { MAX_NAP });
    if s.paused {
        return Plan { action: None, wake, next_rotation: None, next_alert: None };
    }
    let next_rotation = rotation_due(s, cfg);
    let mut action = None;
    let mut consider = |due: DateTime<Utc>, what: Action, wake: &mut DateTime<Utc>| {
        if due <= now {
            action = action.or(Some(what));
        } else {
            *wake = (*wake).min(due);
        }
    };
    if s.usable.is_some() {
        let verify = match s.suspect_since {
            Some(last) => last.min(now) + chrono(cadence.reprobe_after),
            None => s.last_verify.map_or(now, |t| t.min(now) + chrono(cadence.verify_every)),
        };
        consider(verify, Action::Verify, &mut wake);
        consider(
            s.ip_checked_at.map_or(now, |t| t.min(now) + chrono(cadence.ip_check_every)),
            Action::CheckIp,
            &mut wake,
        );
    }
    if let Some(due) = next_rotation {
        consider(due, Action::Rotate, &mut wake);
    }
    let next_alert = if ladder_runs(s) {
        let step = match s.ladder_expiry {
            Some(exp) => policy::alert_due(now, exp, s.alert_sent, cfg),
            None => s.alert_sent.is_none().then_some(AlertStep::Expired),
        };
        if let Some(step) = step {
            action = action.or(Some(Action::Alert(step)));
        }
        s.ladder_expiry.and_then(|exp| policy::next_alert_at(exp, step.or(s.alert_sent), cfg))
    } else if s.mode == Mode::Consent {
        s.ladder_expiry.and_then(|exp| policy::next_alert_at(exp, None, cfg))
    } else {
        None
    };
    if let Some(n) = next_alert.filter(|_| ladder_runs(s)) {
        wake = wake.min(n);
    }
    if let Some(exp) = s.ladder_expiry.filter(|e| *e > now) {
        wake = wake.min(exp);
    }
    if action.is_some() {
        wake = now;
    }
    Plan { action, wake, next_rotation, next_alert }
}

#[cfg(test)]
mod tests;
