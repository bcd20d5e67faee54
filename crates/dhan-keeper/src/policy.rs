//! When to rotate, when to alert, how long to back off: pure functions of (now, token, config).
//!
//! No I/O and no clock reads, so every hard case (IST, market hours, the 24 h drift, the mint
//! cooldown, weekends) is unit-tested without a runtime. The daemon's loop only asks "what next,
//! and when" and sleeps until then.
//!
//! # Market awareness
//! A rotation kills the token a trading program holds. So the latest allowed rotation instant,
//! `deadline = expiry - refresh_before`, is used as is when it falls outside every session of the
//! chosen segments. When it falls inside one, the token would not last the session, so the
//! rotation moves before that session opens. Each token lives exactly 24 h, so the rotation time
//! drifts earlier by `refresh_before` a day through the night, and when it would land in a
//! session it jumps to before the open; every day stays outside market hours.
//!
//! With segments (`"equity"`, the default, `"commodity"`, `"currency"`), the sessions come from
//! the [`crate::calendar`]: holidays and weekends without a session are free, special sessions
//! (Muhurat, Saturday sessions) are avoided, and sessions of several segments count as one busy
//! span where they overlap. Each span starts [`SESSION_LEAD`] before the open (equity's pre-open
//! and programs logging in), and a moved rotation lands `refresh_before`, at most
//! [`MOVE_MARGIN`], before that: room for a retry without spending a whole night's gap, which on
//! MCX (23:55 to 09:00) would cost a rotation a day.
//!
//! A fixed window (`"HH:MM-HH:MM"`) keeps its old meaning exactly: IST, Monday to Friday, the
//! rotation moved to `refresh_before` before the open, exchange holidays treated as trading days.

use std::time::Duration;

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc, Weekday};

use crate::calendar::{Calendar, Segments};
use crate::config::{MarketChoice, MarketHours};
use crate::ist;

/// How long before a calendar session opens rotations already stay away.
pub const SESSION_LEAD: chrono::Duration = chrono::Duration::minutes(15);

/// The most a rotation moved out of a calendar session lands before the session's lead.
pub const MOVE_MARGIN: Duration = Duration::from_secs(30 * 60);

/// The sessions rotations stay out of.
#[derive(Debug, Clone)]
pub enum Market {
    /// One fixed IST window, Monday to Friday.
    Window(MarketHours),
    /// Every session of these segments in the calendar.
    Calendar {
        /// The calendar (shared, read-only).
        calendar: Arc<Calendar>,
        /// The chosen segments.
        segments: Segments,
    },
}

impl Market {
    /// Whether `t` falls inside a session to avoid (for a calendar, including the lead).
    pub fn busy(&self, t: DateTime<Utc>) -> bool {
        match self {
            Market::Window(mh) => in_market(t, mh),
            Market::Calendar { calendar, segments } => calendar.busy_span(t, *segments, SESSION_LEAD).is_some(),
        }
    }
}

/// The policy's settings, from the config.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// Rotate no later than this before expiry.
    pub refresh_before: Duration,
    /// First alert this long before expiry.
    pub alert_before: Duration,
    /// Last alert this long before expiry.
    pub final_alert_before: Duration,
    /// Sessions to keep rotations out of; `None` when `market_hours` is `"off"`.
    pub market: Option<Market>,
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
            market: cfg.market_hours.map(|m| match m {
                MarketChoice::Window(mh) => Market::Window(mh),
                MarketChoice::Segments(segments) => Market::Calendar { calendar: cfg.calendar.clone(), segments },
            }),
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
    match &cfg.market {
        Some(Market::Window(mh)) if in_market(deadline, mh) => open_of_day(deadline, mh) - chrono(cfg.refresh_before),
        Some(Market::Calendar { calendar, segments }) => match calendar.busy_span(deadline, *segments, SESSION_LEAD) {
            Some((start, _)) => {
                let wanted = start - chrono(cfg.refresh_before.min(MOVE_MARGIN));
                // A gap shorter than the margin: rotate as the previous session closes instead.
                match calendar.busy_span(wanted, *segments, SESSION_LEAD) {
                    Some((_, end)) if end <= start => end,
                    _ => wanted,
                }
            }
            None => deadline,
        },
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
    use crate::calendar::Segment;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("valid").with_timezone(&Utc)
    }

    fn cfg(refresh_min: u64) -> PolicyConfig {
        PolicyConfig {
            refresh_before: Duration::from_secs(refresh_min * 60),
            alert_before: Duration::from_secs(2 * 3600),
            final_alert_before: Duration::from_secs(30 * 60),
            market: Some(Market::Window(MarketHours::default())),
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
        let c = PolicyConfig { market: None, ..cfg(30) };
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
                let market = c.market.clone().expect("set");
                let mut now = at(start);
                let mut expires = now + chrono::Duration::hours(24); // first token minted at start
                let mut last_mint = Some(now);
                let mut rotations = 0;
                while now < at(start) + chrono::Duration::days(60) {
                    let rotate = next_rotation(now, Some(expires), last_mint, &c);
                    assert!(rotate >= now, "never in the past");
                    assert!(rotate < expires, "token expired before rotation: start {start}, refresh {refresh_min}m");
                    assert!(!market.busy(rotate), "rotation at {} inside market hours", ist::to_ist(&rotate));
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

    fn calendar_cfg(refresh_min: u64, segments: Segments) -> PolicyConfig {
        let calendar = Arc::new(Calendar::embedded().expect("the embedded calendar parses"));
        PolicyConfig { market: Some(Market::Calendar { calendar, segments }), ..cfg(refresh_min) }
    }

    /// Whether `t` is inside a session of `segs` or its lead, checked session by session (not
    /// through the merged spans the policy uses).
    fn inside_any_session(cal: &Calendar, segs: Segments, t: DateTime<Utc>) -> bool {
        let day = ist::to_ist(&t).date_naive();
        [day.pred_opt(), Some(day), day.succ_opt()].into_iter().flatten().any(|d| {
            segs.iter()
                .flat_map(|s| cal.sessions_on(d, s))
                .any(|s| s.opens_at() - SESSION_LEAD <= t && t < s.closes_at())
        })
    }

    /// The fewest rotations possible over the calendar: always rotate at the latest free minute
    /// before the deadline (greedy is optimal when later is never worse).
    fn fewest_rotations(
        cal: &Calendar,
        segs: Segments,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        refresh: u64,
    ) -> usize {
        let (mut now, mut n) = (start, 0);
        while now < end {
            let mut t = now + chrono::Duration::hours(24) - chrono::Duration::minutes(refresh as i64);
            while inside_any_session(cal, segs, t) {
                t -= chrono::Duration::minutes(1);
            }
            assert!(t > now, "no free minute in a day");
            now = t;
            n += 1;
        }
        n
    }

    /// A whole real year (2025: Budget Saturday, Muhurat on a holiday afternoon, MCX's daylight
    /// switches) of back-to-back 24 h tokens for each segment and for all three together: no
    /// rotation inside a session (or its lead), no token expired or replaced late, and at most
    /// 25 % more rotations than the fewest the calendar allows.
    #[test]
    fn a_year_of_the_calendar_never_rotates_inside_a_session() {
        let sets = [
            ("equity", Segments::one(Segment::Equity)),
            ("commodity", Segments::one(Segment::Commodity)),
            ("currency", Segments::one(Segment::Currency)),
            ("all", Segments::ALL),
        ];
        let starts = [
            "2025-01-01T10:17:00+05:30", // Wednesday mid-session
            "2025-01-03T15:29:00+05:30", // Friday just before the equity close
            "2025-01-04T03:00:00+05:30", // Saturday night
            "2025-01-07T08:59:30+05:30", // Tuesday just before the open
        ];
        for (label, segs) in sets {
            for refresh_min in [5, 30, 90, 240] {
                let c = calendar_cfg(refresh_min, segs);
                let Some(Market::Calendar { calendar, .. }) = &c.market else { unreachable!() };
                let (mut worst, mut fewest_seen) = (0.0f64, 0);
                for start in starts {
                    let (begin, end) = (at(start), at(start) + chrono::Duration::days(365));
                    let mut now = begin;
                    let mut expires = now + chrono::Duration::hours(24);
                    let mut last_mint = Some(now);
                    let mut rotations = 0;
                    while now < end {
                        let rotate = next_rotation(now, Some(expires), last_mint, &c);
                        let shown = ist::to_ist(&rotate);
                        assert!(rotate >= now, "never in the past");
                        assert!(rotate < expires, "{label}: token expired before rotation at {shown}");
                        assert!(expires - rotate >= chrono(c.refresh_before), "{label}: rotated late at {shown}");
                        assert!(
                            !inside_any_session(calendar, segs, rotate),
                            "{label}: rotation at {shown} in a session"
                        );
                        now = rotate;
                        expires = now + chrono::Duration::hours(24);
                        last_mint = Some(now);
                        rotations += 1;
                    }
                    let fewest = fewest_rotations(calendar, segs, begin, end, refresh_min);
                    assert!(
                        rotations * 4 <= fewest * 5,
                        "{label}, refresh {refresh_min}m, start {start}: {rotations} rotations, fewest {fewest}"
                    );
                    worst = worst.max(rotations as f64 / fewest as f64);
                    fewest_seen = fewest;
                }
                eprintln!("{label:9} refresh {refresh_min:3}m: fewest {fewest_seen}/year, worst start {worst:.3}x");
            }
        }
    }

    #[test]
    fn calendar_rotations_avoid_special_sessions_and_use_holidays() {
        let equity = calendar_cfg(30, Segments::one(Segment::Equity));
        // Muhurat 2025 (13:45-14:45): a 14:00 deadline moves before the 13:30 lead.
        let exp = at("2025-10-21T14:30:00+05:30");
        assert_eq!(rotation_time(exp, &equity), at("2025-10-21T13:00:00+05:30"));
        // The same hour on an ordinary Tuesday of a holiday-free week was outside the session...
        // but 11:00 on Budget Saturday 2025 is inside one.
        let exp = at("2025-02-01T11:30:00+05:30");
        assert_eq!(rotation_time(exp, &equity), at("2025-02-01T08:30:00+05:30"));
        // Republic Day 2026 is closed: a midday deadline stands.
        let exp = at("2026-01-26T12:30:00+05:30");
        assert_eq!(rotation_time(exp, &equity), at("2026-01-26T12:00:00+05:30"));
        // The fixed window treats the holiday as a trading day, as before.
        assert_eq!(rotation_time(exp, &cfg(30)), at("2026-01-26T08:30:00+05:30"));
        // An MCX evening: 22:00 is inside commodity's session, not equity's.
        let commodity = calendar_cfg(30, Segments::one(Segment::Commodity));
        let exp = at("2026-02-10T22:30:00+05:30");
        assert_eq!(rotation_time(exp, &equity), at("2026-02-10T22:00:00+05:30"));
        assert_eq!(rotation_time(exp, &commodity), at("2026-02-10T08:15:00+05:30"));
        // After the close (23:55 in February), the deadline stands.
        let exp = at("2026-02-11T00:30:00+05:30");
        assert_eq!(rotation_time(exp, &commodity), at("2026-02-11T00:00:00+05:30"));
        // The default equity setting matches the old 09:00-15:30 default on an ordinary day.
        let exp = at("2026-02-10T12:00:00+05:30");
        assert_eq!(rotation_time(exp, &equity), rotation_time(exp, &cfg(30)));
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
