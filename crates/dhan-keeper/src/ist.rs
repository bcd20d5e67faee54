//! Indian Standard Time: how Dhan writes instants, and how we show them to the trader.
//!
//! Dhan sends `expiryTime` as a naive wall time (`2026-11-26T08:30:00` or with `.000` millis) that
//! is IST (UTC+05:30), and `tokenValidity` as `DD/MM/YYYY HH:mm` IST. Reading those as UTC or as
//! the machine's local time is the classic 5h30m bug, so every conversion lives here and every
//! stored instant carries its offset.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};

/// The IST offset, +05:30.
pub fn offset() -> FixedOffset {
    FixedOffset::east_opt(5 * 3600 + 30 * 60).expect("+05:30 is within ±24 h")
}

/// Converts an instant to IST.
pub fn to_ist<Tz: TimeZone>(t: &DateTime<Tz>) -> DateTime<FixedOffset> {
    t.with_timezone(&offset())
}

/// Parses Dhan's naive IST `expiryTime`, with or without fractional seconds. Also accepts a value
/// that already carries an offset (`+05:30`, `Z`), should Dhan ever send one.
pub fn parse_naive_ist(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(to_ist(&t));
    }
    const FORMATS: [&str; 3] = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"];
    FORMATS.iter().find_map(|f| {
        let naive = NaiveDateTime::parse_from_str(s, f).ok()?;
        offset().from_local_datetime(&naive).single()
    })
}

/// Parses `/v2/profile`'s `tokenValidity` (`DD/MM/YYYY HH:mm`, IST).
pub fn parse_token_validity(s: &str) -> Option<DateTime<FixedOffset>> {
    let naive = NaiveDateTime::parse_from_str(s.trim(), "%d/%m/%Y %H:%M").ok()?;
    offset().from_local_datetime(&naive).single()
}

/// The naive IST wall time, as the original prototype wrote `expiry_time`: `2026-11-26T08:30:00`.
pub fn naive_string(t: &DateTime<FixedOffset>) -> String {
    to_ist(t).format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// A short human form for messages: `26 Nov 08:30 IST`.
pub fn human(t: &DateTime<FixedOffset>) -> String {
    to_ist(t).format("%a %d %b %H:%M IST").to_string()
}

/// To the second, for waits measured in seconds: `Thu 26 Nov 08:30:05 IST`.
pub fn human_secs(t: &DateTime<FixedOffset>) -> String {
    to_ist(t).format("%a %d %b %H:%M:%S IST").to_string()
}

/// A compact duration for humans: `23h 59m`, `4m 10s`, `12s`.
pub fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    let (sign, secs) = if secs < 0 { ("-", -secs) } else { ("", secs) };
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{sign}{h}h {m:02}m")
    } else if m > 0 {
        format!("{sign}{m}m {s:02}s")
    } else {
        format!("{sign}{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn naive_expiry_is_read_as_ist_not_utc() {
        let t = parse_naive_ist("2025-09-23T12:37:23").expect("parses");
        assert_eq!(t.to_rfc3339(), "2025-09-23T12:37:23+05:30");
        assert_eq!(t.with_timezone(&Utc).to_rfc3339(), "2025-09-23T07:07:23+00:00");
    }

    #[test]
    fn millis_and_offsets_are_accepted() {
        let a = parse_naive_ist("2026-01-01T00:00:00.000").expect("millis");
        assert_eq!(a.to_rfc3339(), "2026-01-01T00:00:00+05:30");
        let b = parse_naive_ist("2025-12-31T18:30:00Z").expect("zulu");
        assert_eq!(a, b);
        assert!(parse_naive_ist("tomorrow").is_none());
        assert!(parse_naive_ist("").is_none());
    }

    #[test]
    fn token_validity_is_minute_precision_ist() {
        let t = parse_token_validity("30/03/2025 15:37").expect("parses");
        assert_eq!(t.to_rfc3339(), "2025-03-30T15:37:00+05:30");
        assert!(parse_token_validity("2025-03-30").is_none());
    }

    #[test]
    fn naive_string_round_trips_the_prototype_format() {
        let t = parse_naive_ist("2026-11-26T08:30:00").expect("parses");
        assert_eq!(naive_string(&t), "2026-11-26T08:30:00");
        assert_eq!(human(&t), "Thu 26 Nov 08:30 IST");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(chrono::Duration::seconds(86_399)), "23h 59m");
        assert_eq!(human_duration(chrono::Duration::seconds(250)), "4m 10s");
        assert_eq!(human_duration(chrono::Duration::seconds(7)), "7s");
        assert_eq!(human_duration(chrono::Duration::seconds(-65)), "-1m 05s");
    }
}
