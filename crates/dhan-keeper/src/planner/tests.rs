//! Tests for the parent module.

use super::*;
use crate::state::CredentialStop;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
}

fn cfg() -> PolicyConfig {
    PolicyConfig {
        refresh_before: Duration::from_secs(30 * 60),
        alert_before: Duration::from_secs(2 * 3600),
        final_alert_before: Duration::from_secs(30 * 60),
        market: None,
        mint_cooldown: Duration::from_secs(125),
        retry_min: Duration::from_secs(5),
        retry_max: Duration::from_secs(300),
    }
}

const CADENCE: Cadence = Cadence {
    verify_every: Duration::from_secs(900),
    reprobe_after: Duration::from_secs(10),
    ip_check_every: Duration::from_secs(6 * 3600),
};

const NOW: &str = "2026-11-30T10:00:00Z";

/// A healthy automatic keeper: a token with 10 h left, checked a minute ago.
fn healthy() -> Snapshot {
    let now = at(NOW);
    Snapshot {
        now,
        mode: Mode::Automatic,
        paused: false,
        unsaved: false,
        usable: Some(Usable { expires_at: at("2026-11-30T20:00:00Z"), renewable: false }),
        ladder_expiry: Some(at("2026-11-30T20:00:00Z")),
        last_verify: Some(at("2026-11-30T09:59:00Z")),
        suspect_since: None,
        ip_checked_at: Some(at("2026-11-30T09:00:00Z")),
        failures: 0,
        last_failure_at: None,
        gate: Gate::Open,
        alerts_enabled: true,
        alert_sent: None,
    }
}

fn stop() -> Gate {
    Gate::CredentialsRefused(CredentialStop {
        at: crate::ist::to_ist(&at("2026-11-30T09:00:00Z")),
        message: "Login failed".into(),
        config_id: "x".into(),
    })
}

#[test]
fn one_action_at_a_time_from_the_snapshot() {
    type Edit = fn(&mut Snapshot);
    let cases: Vec<(&str, Edit, Option<Action>, &str)> = vec![
        ("healthy: look again within MAX_NAP", |_| {}, None, "2026-11-30T10:00:30Z"),
        ("never checked: verify now", |s| s.last_verify = None, Some(Action::Verify), NOW),
        ("ip never asked: ask now", |s| s.ip_checked_at = None, Some(Action::CheckIp), NOW),
        (
            "a rejection: re-probe 10 s after it, not 15 min",
            |s| s.suspect_since = Some(at("2026-11-30T09:59:55Z")),
            None,
            "2026-11-30T10:00:05Z",
        ),
        ("re-probe due", |s| s.suspect_since = Some(at("2026-11-30T09:59:50Z")), Some(Action::Verify), NOW),
        (
            "no token: mint now",
            |s| {
                s.usable = None;
                s.ladder_expiry = None;
            },
            Some(Action::Rotate),
            NOW,
        ),
        (
            "no token, inside Dhan's window: wait for it",
            |s| {
                s.usable = None;
                s.ladder_expiry = None;
                s.alerts_enabled = false;
                s.gate = Gate::Window { until: at("2026-11-30T10:01:05Z") };
            },
            None,
            "2026-11-30T10:00:30Z",
        ),
        (
            "rotation due (expiry in 20 min < refresh_before)",
            |s| {
                s.usable = Some(Usable { expires_at: at("2026-11-30T10:20:00Z"), renewable: false });
                s.ladder_expiry = Some(at("2026-11-30T10:20:00Z"));
            },
            Some(Action::Rotate),
            NOW,
        ),
        (
            "after a failure: back off from it (5 s · jitter 50–100 %)",
            |s| {
                s.usable = Some(Usable { expires_at: at("2026-11-30T10:20:00Z"), renewable: false });
                s.ladder_expiry = Some(at("2026-11-30T10:20:00Z"));
                s.failures = 1;
                s.last_failure_at = Some(at("2026-11-30T09:59:59Z"));
                s.alerts_enabled = false;
            },
            None,
            "2026-11-30T10:00:01.500Z",
        ),
        (
            "automatic and failing: the ladder runs (20 min left: final step)",
            |s| {
                s.usable = Some(Usable { expires_at: at("2026-11-30T10:20:00Z"), renewable: false });
                s.ladder_expiry = Some(at("2026-11-30T10:20:00Z"));
                s.failures = 1;
                s.last_failure_at = Some(at("2026-11-30T09:59:59Z"));
            },
            Some(Action::Alert(AlertStep::Final)),
            NOW,
        ),
        (
            "credentials refused: no rotation, but the ladder says so",
            |s| {
                s.usable = None;
                s.ladder_expiry = None;
                s.gate = stop();
            },
            Some(Action::Alert(AlertStep::Expired)),
            NOW,
        ),
        (
            "credentials refused, already told: nothing",
            |s| {
                s.usable = None;
                s.ladder_expiry = None;
                s.gate = stop();
                s.alert_sent = Some(AlertStep::Expired);
            },
            None,
            "2026-11-30T10:00:30Z",
        ),
        (
            "paused: nothing at all",
            |s| {
                s.paused = true;
                s.last_verify = None;
            },
            None,
            "2026-11-30T10:00:30Z",
        ),
    ];
    for (name, edit, action, wake) in cases {
        let mut s = healthy();
        edit(&mut s);
        let p = plan(&s, &cfg(), &CADENCE);
        assert_eq!((p.action, p.wake), (action, at(wake)), "{name}");
    }
}

#[test]
fn renew_or_mint_and_who_rotates() {
    let mut s = healthy();
    s.usable = Some(Usable { expires_at: at("2026-11-30T10:40:00Z"), renewable: true });
    s.gate = Gate::Window { until: at("2026-11-30T10:30:00Z") };
    // A Dhan Web token is renewed on schedule; Dhan's mint window does not apply to it.
    assert_eq!(rotation_due(&s, &cfg()), Some(at("2026-11-30T10:10:00Z")));
    s.usable = Some(Usable { expires_at: at("2026-11-30T10:40:00Z"), renewable: false });
    assert_eq!(rotation_due(&s, &cfg()), Some(at("2026-11-30T10:30:00Z")), "a mint waits for the window");
    s.mode = Mode::Consent;
    assert_eq!(rotation_due(&s, &cfg()), None, "consent mode: a human logs in");
    s.usable = Some(Usable { expires_at: at("2026-11-30T10:40:00Z"), renewable: true });
    assert_eq!(rotation_due(&s, &cfg()), Some(at("2026-11-30T10:10:00Z")), "but a web token still renews");
    s.mode = Mode::Automatic;
    s.gate = stop();
    assert_eq!(rotation_due(&s, &cfg()), Some(at("2026-11-30T10:10:00Z")), "renewal needs no PIN");
    s.usable = Some(Usable { expires_at: at("2026-11-30T10:40:00Z"), renewable: false });
    assert_eq!(rotation_due(&s, &cfg()), None, "minting is stopped");
}

#[test]
fn consent_mode_runs_the_whole_ladder_and_a_failure_in_the_future_counts_as_now() {
    let mut s = healthy();
    s.mode = Mode::Consent;
    s.usable = Some(Usable { expires_at: at("2026-11-30T11:30:00Z"), renewable: false });
    s.ladder_expiry = Some(at("2026-11-30T11:30:00Z"));
    let p = plan(&s, &cfg(), &CADENCE);
    assert_eq!(p.action, Some(Action::Alert(AlertStep::Early)));
    assert_eq!(p.next_alert, Some(at("2026-11-30T11:00:00Z")));
    assert_eq!(p.next_rotation, None);
    s.alert_sent = Some(AlertStep::Early);
    assert_eq!(plan(&s, &cfg(), &CADENCE).action, None, "each step once");

    let mut s = healthy();
    s.failures = 3;
    s.last_failure_at = Some(at("2026-12-01T10:00:00Z"));
    let retry = next_retry(s.failures, s.last_failure_at, s.now, &cfg()).unwrap_or_default();
    assert!(retry > s.now && retry <= s.now + chrono::Duration::seconds(20), "{retry}");
}
