//! When to rotate, when to alert, how long to back off: pure functions of (now, token, config).
//!
//! No I/O and no clock reads, so every hard case (IST, market hours, the 24 h drift, the mint
//! cooldown, weekends) is unit-tested without a runtime. The daemon's loop only asks "what next,
//! and when" and sleeps until then.
//!
//! # Market awareness
//! A rotation kills the token a trading program holds. So the latest allowed rotation instant,
//! `deadline = expiry - refresh_before`, is used as is when it falls outside market hours (IST,
//! Monday to Friday). When it falls inside a session, the token would not last the session, so the
//! rotation moves to `refresh_before` before that session opens. Each token lives exactly 24 h, so
//! the rotation time drifts earlier by `refresh_before` a day through the night, and when it
//! would land in a session it jumps to before the open; every day stays outside market hours.
//! (Exchange holidays are treated as trading days: rotating before a holiday's "open" is harmless.)

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc, Weekday};

use crate::config::MarketHours;
use crate::ist;

/// The policy's settings, from the config.
#[derive(Debug, Clone, Copy)]
pub struct PolicyConfig {
    /// Rotate no later than this before expiry.
    pub refresh_before: Duration,
    /// First alert this long before expiry.
    pub alert_before: Duration,
    /// Last alert this long before expiry.
    pub final_alert_before: Duration,
    /// Sessions to keep rotations out of.
    pub market_hours: Option<MarketHours>,
    /// Dhan's minimum gap between two mints.
    pub mint_cooldown: Duration,
    /// First retry delay after a failure.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
}

impl PolicyConfig {
    /// The policy settings of a config.
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Self {
            refresh_before: cfg.refresh_before,
            alert_before: cfg.alert_before,
            final_alert_before: cfg.final_alert_before,
            market_hours: cfg.market_hours,
            mint_cooldown: cfg.mint_cooldown,
            retry_min: cfg.retry_min,
            retry_max: cfg.retry_max,
        }
    }
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::zero())
}

/// Whether `t` falls inside a trading session (IST, Mon–Fri, `open <= t < close`).
pub fn in_market(t: DateTime<Utc>, mh: &MarketHours) -> bool {
    let local = ist::to_ist(&t);
    let weekday = !matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
    let time = local.time();
    weekday && time >= mh.open && time < mh.close
}

/// The session open (as an instant) of the IST day containing `t`.
fn open_of_day(t: DateTime<Utc>, mh: &MarketHours) -> DateTime<Utc> {
    let day: NaiveDate = ist::to_ist(&t).date_naive();
    ist::offset().from_local_datetime(&day.and_time(mh.open)).single().map(|d| d.with_timezone(&Utc)).unwrap_or(t)
}

/// The planned rotation instant for a token expiring at `expires_at`, ignoring the cooldown.
pub fn rotation_time(expires_at: DateTime<Utc>, cfg: &PolicyConfig) -> DateTime<Utc> {
    let deadline = expires_at - chrono(cfg.refresh_before);
    match &cfg.market_hours {
        Some(mh) if in_market(deadline, mh) => open_of_day(deadline, mh) - chrono(cfg.refresh_before),
        _ => deadline,
    }
}

/// When the next rotation should happen; a value at or before `now` means "now".
/// `last_mint` keeps the next mint out of Dhan's 2-minute window.
pub fn next_rotation(
    now: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_mint: Option<DateTime<Utc>>,
    cfg: &PolicyConfig,
) -> DateTime<Utc> {
    let planned = match expires_at {
        Some(exp) if exp > now => rotation_time(exp, cfg),
        _ => now,
    };
    let earliest = last_mint.map_or(planned, |m| m + chrono(cfg.mint_cooldown));
    planned.max(earliest).max(now)
}

/// Retry delay after `failures` failed rotations in a row (1 = first failure): `retry_min`
/// (5 s) doubling to `retry_max` (5 min); see [`backoff_between`].
pub fn backoff(failures: u32, jitter: f64, cfg: &PolicyConfig) -> Duration {
    backoff_between(failures, jitter, cfg.retry_min, cfg.retry_max)
}

/// Exponential back-off shared by every retry loop (rotations here, Telegram calls in
/// [`crate::telegram`]): `min` doubling per failure up to `max`, then scaled by `jitter` in
/// [0, 1) to between 50 % and 100 % so restarts don't align.
pub fn backoff_between(failures: u32, jitter: f64, min: Duration, max: Duration) -> Duration {
    let exp = min.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    exp.min(max).mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// The steps of the expiry alert ladder, each sent at most once per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStep {
    /// `alert_before` ahead of expiry (default 2 h).
    Early,
    /// `final_alert_before` ahead of expiry (default 30 min).
    Final,
    /// At expiry.
    Expired,
}

impl AlertStep {
    /// When this step is due for a token expiring at `expires_at`.
    pub fn due_at(self, expires_at: DateTime<Utc>, cfg: &PolicyConfig) -> DateTime<Utc> {
        match self {
            AlertStep::Early => expires_at - chrono(cfg.alert_before),
            AlertStep::Final => expires_at - chrono(cfg.final_alert_before),
            AlertStep::Expired => expires_at,
        }
    }
}

/// The most advanced alert step due at `now` that has not been sent yet. Steps skipped while the
/// daemon was down collapse into the latest one: one message, not three.
pub fn alert_due(
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    sent: Option<AlertStep>,
    cfg: &PolicyConfig,
) -> Option<AlertStep> {
    [AlertStep::Expired, AlertStep::Final, AlertStep::Early]
        .into_iter()
        .find(|s| s.due_at(expires_at, cfg) <= now)
        .filter(|s| sent.is_none_or(|done| *s > done))
}

/// When the next not-yet-sent alert step falls due.
pub fn next_alert_at(expires_at: DateTime<Utc>, sent: Option<AlertStep>, cfg: &PolicyConfig) -> Option<DateTime<Utc>> {
    [AlertStep::Early, AlertStep::Final, AlertStep::Expired]
        .into_iter()
        .filter(|s| sent.is_none_or(|done| *s > done))
        .map(|s| s.due_at(expires_at, cfg))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("valid").with_timezone(&Utc)
    }

    fn cfg(refresh_min: u64) -> PolicyConfig {
        PolicyConfig {
            refresh_before: Duration::from_secs(refresh_min * 60),
            alert_before: Duration::from_secs(2 * 3600),
            final_alert_before: Duration::from_secs(30 * 60),
            market_hours: Some(MarketHours::default()),
            mint_cooldown: Duration::from_secs(120),
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
        }
    }

    #[test]
    fn market_hours_are_ist_weekdays() {
        let mh = MarketHours::default();
        assert!(in_market(at("2026-11-23T09:00:00+05:30"), &mh), "Monday open");
        assert!(in_market(at("2026-11-27T15:29:59+05:30"), &mh), "Friday 15:29");
        assert!(!in_market(at("2026-11-27T15:30:00+05:30"), &mh), "close is outside");
        assert!(!in_market(at("2026-11-28T11:00:00+05:30"), &mh), "Saturday");
        assert!(in_market(at("2026-11-23T04:00:00Z"), &mh), "04:00 UTC is 09:30 IST, not before the open");
    }

    #[test]
    fn a_deadline_outside_the_session_is_used_as_is() {
        let exp = at("2026-11-24T08:00:00+05:30");
        assert_eq!(rotation_time(exp, &cfg(30)), at("2026-11-24T07:30:00+05:30"));
        let weekend = at("2026-11-28T12:00:00+05:30");
        assert_eq!(rotation_time(weekend, &cfg(30)), at("2026-11-28T11:30:00+05:30"));
    }

    #[test]
    fn a_deadline_inside_the_session_moves_before_the_open() {
        // Friday 15:29 IST deadline: the token would die before the close, so rotate before 09:00.
        let exp = at("2026-11-27T15:59:00+05:30");
        assert_eq!(rotation_time(exp, &cfg(30)), at("2026-11-27T08:30:00+05:30"));
    }

    #[test]
    fn without_market_hours_the_deadline_is_the_plan() {
        let c = PolicyConfig { market_hours: None, ..cfg(30) };
        let exp = at("2026-11-27T12:00:00+05:30");
        assert_eq!(rotation_time(exp, &c), at("2026-11-27T11:30:00+05:30"));
    }

    #[test]
    fn the_mint_cooldown_and_dead_tokens_are_respected() {
        let now = at("2026-11-23T10:00:00+05:30");
        assert_eq!(next_rotation(now, None, None, &cfg(30)), now, "no token: now");
        assert_eq!(next_rotation(now, Some(now), None, &cfg(30)), now, "expired: now");
        let last = now - chrono::Duration::seconds(30);
        assert_eq!(next_rotation(now, None, Some(last), &cfg(30)), last + chrono::Duration::seconds(120));
    }

    /// Walks 60 days of back-to-back 24 h tokens for several settings and start times: no
    /// rotation ever falls inside market hours (after the first, which may be forced by a start
    /// inside a session with no token), and no token is ever expired when it is replaced.
    #[test]
    fn sixty_days_of_rotations_never_touch_market_hours_and_never_let_the_token_expire() {
        let starts = [
            "2026-11-23T10:17:00+05:30", // Monday mid-session
            "2026-11-27T15:29:00+05:30", // Friday just before the close
            "2026-11-28T03:00:00+05:30", // Saturday night
            "2026-11-24T08:59:30+05:30", // Tuesday just before the open
        ];
        for refresh_min in [5, 30, 90, 240] {
            for start in starts {
                let c = cfg(refresh_min);
                let mh = c.market_hours.expect("set");
                let mut now = at(start);
                let mut expires = now + chrono::Duration::hours(24); // first token minted at start
                let mut last_mint = Some(now);
                let mut rotations = 0;
                while now < at(start) + chrono::Duration::days(60) {
                    let rotate = next_rotation(now, Some(expires), last_mint, &c);
                    assert!(rotate >= now, "never in the past");
                    assert!(rotate < expires, "token expired before rotation: start {start}, refresh {refresh_min}m");
                    assert!(!in_market(rotate, &mh), "rotation at {} inside market hours", ist::to_ist(&rotate));
                    assert!(expires - rotate >= chrono(c.refresh_before), "rotated later than refresh_before");
                    now = rotate;
                    expires = now + chrono::Duration::hours(24);
                    last_mint = Some(now);
                    rotations += 1;
                }
                // Each token must be replaced refresh_before early, so at best one rotation per
                // (24 h - refresh_before); moves before the open may cost up to 25 % more.
                let fewest = (60.0 * 24.0 / (24.0 - refresh_min as f64 / 60.0)).ceil() as usize;
                assert!(
                    rotations >= fewest && rotations * 4 <= fewest * 5,
                    "{rotations} rotations in 60 days (fewest possible {fewest})"
                );
            }
        }
    }

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter() {
        let c = cfg(30);
        assert_eq!(backoff(1, 1.0, &c), Duration::from_secs(5));
        assert_eq!(backoff(2, 1.0, &c), Duration::from_secs(10));
        assert_eq!(backoff(7, 1.0, &c), Duration::from_secs(300));
        assert_eq!(backoff(99, 1.0, &c), Duration::from_secs(300));
        assert_eq!(backoff(1, 0.0, &c), Duration::from_millis(2500));
    }

    #[test]
    fn alerts_fire_once_per_step_and_collapse_missed_steps() {
        let c = cfg(30);
        let exp = at("2026-11-24T08:30:00+05:30");
        assert_eq!(alert_due(at("2026-11-24T06:00:00+05:30"), exp, None, &c), None);
        assert_eq!(alert_due(at("2026-11-24T06:30:00+05:30"), exp, None, &c), Some(AlertStep::Early));
        assert_eq!(alert_due(at("2026-11-24T07:00:00+05:30"), exp, Some(AlertStep::Early), &c), None);
        assert_eq!(alert_due(at("2026-11-24T08:00:00+05:30"), exp, Some(AlertStep::Early), &c), Some(AlertStep::Final));
        // Down from 06:00 to 08:45: one "expired" alert, not three.
        assert_eq!(alert_due(at("2026-11-24T08:45:00+05:30"), exp, None, &c), Some(AlertStep::Expired));
        assert_eq!(alert_due(at("2026-11-24T09:45:00+05:30"), exp, Some(AlertStep::Expired), &c), None);
        assert_eq!(next_alert_at(exp, Some(AlertStep::Early), &c), Some(at("2026-11-24T08:00:00+05:30")));
        assert_eq!(next_alert_at(exp, Some(AlertStep::Expired), &c), None);
    }
}
