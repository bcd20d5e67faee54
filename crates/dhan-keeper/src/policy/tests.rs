//! Tests for the parent module.

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
        segs.iter().flat_map(|s| cal.sessions_on(d, s)).any(|s| s.opens_at() - SESSION_LEAD <= t && t < s.closes_at())
    })
}

/// The fewest rotations possible over the calendar: always rotate at the latest free minute
/// before the deadline (greedy is optimal when later is never worse).
fn fewest_rotations(cal: &Calendar, segs: Segments, start: DateTime<Utc>, end: DateTime<Utc>, refresh: u64) -> usize {
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
                    assert!(!inside_any_session(calendar, segs, rotate), "{label}: rotation at {shown} in a session");
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
