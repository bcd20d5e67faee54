//! The exchange calendar: when the Indian markets a trader uses are in session.
//!
//! A rotation kills the token a live strategy holds, so the daemon must know every session:
//! regular hours per segment, exchange holidays (no session), and special sessions (Diwali
//! Muhurat trading, Saturday Budget sessions, changed hours). No maintained Rust crate covers NSE,
//! BSE and MCX, so the data is ours: `data/calendar.cal`, generated from `pandas_market_calendars`
//! and `exchange_calendars` plus reviewed overrides (`tools/calendar/`), is embedded in the binary,
//! and a user's `calendar_file` in the same format is applied on top. The format is one entry per
//! line so a bad entry can be reported with its line number; `docs/calendar.md` describes it.
//!
//! Everything here is pure: parse text, answer questions about dates and instants.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};

use crate::ist;

/// The calendar compiled into the binary.
pub const EMBEDDED: &str = include_str!("../data/calendar.cal");

/// A market segment with its own sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    /// NSE/BSE cash and F&O.
    Equity,
    /// MCX commodity derivatives.
    Commodity,
    /// NSE/BSE currency derivatives.
    Currency,
}

impl Segment {
    /// Every segment, in display order.
    pub const ALL: [Segment; 3] = [Segment::Equity, Segment::Commodity, Segment::Currency];

    /// The name used in config, files and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Segment::Equity => "equity",
            Segment::Commodity => "commodity",
            Segment::Currency => "currency",
        }
    }

    /// Parses a segment name (case-insensitive).
    pub fn parse(s: &str) -> Option<Segment> {
        Segment::ALL.into_iter().find(|g| g.name().eq_ignore_ascii_case(s.trim()))
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segments(u8);

impl Segments {
    /// All three segments.
    pub const ALL: Segments = Segments(0b111);

    /// Just one segment.
    pub fn one(s: Segment) -> Self {
        Segments(s.bit())
    }

    /// This set with `s` added.
    pub fn with(self, s: Segment) -> Self {
        Segments(self.0 | s.bit())
    }

    /// Whether `s` is in the set.
    pub fn contains(self, s: Segment) -> bool {
        self.0 & s.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The segments in the set, in display order.
    pub fn iter(self) -> impl Iterator<Item = Segment> {
        Segment::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Parses `equity`, `equity,commodity` and the like; `None` names the first unknown part.
    pub fn parse_list(s: &str) -> Result<Segments, String> {
        let mut set = Segments::default();
        for part in s.split(',') {
            set = set.with(Segment::parse(part).ok_or_else(|| part.trim().to_string())?);
        }
        Ok(set)
    }
}

impl fmt::Display for Segments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Segment::name).collect();
        f.write_str(&names.join(", "))
    }
}

/// Whether a session is the segment's regular one or a special one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The segment's usual weekday hours.
    Regular,
    /// A session the calendar lists for that day (Muhurat, a Saturday session, changed hours).
    Special,
}

impl Kind {
    /// `regular` or `special`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Regular => "regular",
            Kind::Special => "special",
        }
    }
}

/// One trading session of one segment on one IST date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The IST date.
    pub date: NaiveDate,
    /// Its segment.
    pub segment: Segment,
    /// Opening time, IST.
    pub open: NaiveTime,
    /// Closing time, IST (exclusive).
    pub close: NaiveTime,
    /// Regular or special.
    pub kind: Kind,
    /// The special session's name.
    pub name: Option<String>,
}

impl Session {
    /// The opening instant.
    pub fn opens_at(&self) -> DateTime<Utc> {
        at_ist(self.date, self.open)
    }

    /// The closing instant.
    pub fn closes_at(&self) -> DateTime<Utc> {
        at_ist(self.date, self.close)
    }
}

/// A weekday without a session: an exchange holiday.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The IST date.
    pub date: NaiveDate,
    /// Its segment.
    pub segment: Segment,
    /// The holiday's name.
    pub name: String,
}

/// A line of a listing: a session, or a weekday on which the segment is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A session.
    Session(Session),
    /// A closed weekday.
    Closed(Closed),
}

impl Entry {
    /// The JSON object `dhan-keeper calendar --json` prints.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Entry::Session(s) => {
                let mut v = serde_json::json!({
                    "date": s.date.to_string(),
                    "segment": s.segment.name(),
                    "open": s.open.format("%H:%M").to_string(),
                    "close": s.close.format("%H:%M").to_string(),
                    "kind": s.kind.name(),
                });
                if let (Some(name), Some(obj)) = (&s.name, v.as_object_mut()) {
                    obj.insert("name".into(), name.clone().into());
                }
                v
            }
            Entry::Closed(c) => serde_json::json!({
                "date": c.date.to_string(),
                "segment": c.segment.name(),
                "closed": true,
                "name": c.name,
            }),
        }
    }

    /// One line for a human: `Tue 2025-10-21  equity     13:45-14:45  special  Muhurat trading`.
    pub fn to_text(&self) -> String {
        match self {
            Entry::Session(s) => format!(
                "{} {}  {:<9}  {}-{}  {:<7}  {}",
                s.date.format("%a"),
                s.date,
                s.segment.name(),
                s.open.format("%H:%M"),
                s.close.format("%H:%M"),
                s.kind.name(),
                s.name.as_deref().unwrap_or("")
            )
            .trim_end()
            .to_string(),
            Entry::Closed(c) => {
                format!(
                    "{} {}  {:<9}  closed       {:<7}  {}",
                    c.date.format("%a"),
                    c.date,
                    c.segment.name(),
                    "",
                    c.name
                )
            }
        }
    }
}

/// A bad line in a calendar file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong and how to write it.
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

#[derive(Debug, Clone)]
struct Hours {
    segment: Segment,
    from: NaiveDate,
    to: NaiveDate,
    open: NaiveTime,
    close: NaiveTime,
}

#[derive(Debug, Clone, Default)]
struct Day {
    closed: Option<String>,
    sessions: Vec<(NaiveTime, NaiveTime, String)>,
}

/// Regular hours, holidays and special sessions per segment.
#[derive(Clone, Default)]
pub struct Calendar {
    hours: Vec<Hours>,
    days: BTreeMap<(Segment, NaiveDate), Day>,
    valid: BTreeMap<Segment, (NaiveDate, NaiveDate)>,
    sources: Vec<String>,
}

impl fmt::Debug for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Calendar").field("days", &self.days.len()).field("valid", &self.valid).finish_non_exhaustive()
    }
}

/// The instant of an IST wall time.
pub fn at_ist(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    // +05:30 has no gaps or folds, so `single()` always answers.
    ist::offset()
        .from_local_datetime(&date.and_time(time))
        .single()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&date.and_time(time)))
}

fn weekday(d: NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

const FORMAT_HINT: &str = "expected `valid SEG FROM TO`, `hours SEG FROM TO HH:MM-HH:MM`, `closed SEG DATE NAME`, \
                           `session SEG DATE HH:MM-HH:MM NAME` or `source SEG YEAR TEXT` (see docs/calendar.md)";

fn date(s: Option<&str>) -> Result<NaiveDate, String> {
    let s = s.ok_or("a date (YYYY-MM-DD) is missing")?;
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{s:?} is not a date; write YYYY-MM-DD"))
}

fn span(s: Option<&str>) -> Result<(NaiveTime, NaiveTime), String> {
    let s = s.ok_or("the times (HH:MM-HH:MM, IST) are missing")?;
    let bad = || format!("{s:?} is not a session; write HH:MM-HH:MM in IST with the open before the close");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let open = NaiveTime::parse_from_str(a, "%H:%M").map_err(|_| bad())?;
    let close = NaiveTime::parse_from_str(b, "%H:%M").map_err(|_| bad())?;
    if open >= close {
        return Err(bad());
    }
    Ok((open, close))
}

fn segments(s: Option<&str>) -> Result<Segments, String> {
    let s = s.ok_or("the segment is missing")?;
    Segments::parse_list(s).map_err(|bad| format!("unknown segment {bad:?}; use equity, commodity or currency"))
}

/// Splits off the first whitespace-separated word.
fn word(s: &str) -> (Option<&str>, &str) {
    let s = s.trim_start();
    if s.is_empty() {
        return (None, s);
    }
    match s.find(char::is_whitespace) {
        Some(i) => (Some(&s[..i]), s[i..].trim_start()),
        None => (Some(s), ""),
    }
}

impl Calendar {
    /// The embedded calendar alone.
    pub fn embedded() -> Result<Calendar, Vec<LineError>> {
        let mut c = Calendar::default();
        c.apply(EMBEDDED)?;
        Ok(c)
    }

    /// Applies a calendar text on top of this calendar, line by line; later lines win. Every bad
    /// line is reported; nothing is applied unless all lines are good.
    pub fn apply(&mut self, text: &str) -> Result<(), Vec<LineError>> {
        let mut next = self.clone();
        let mut errors = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if let Err(message) = next.apply_line(line) {
                errors.push(LineError { line: i + 1, message });
            }
        }
        if errors.is_empty() {
            *self = next;
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn apply_line(&mut self, line: &str) -> Result<(), String> {
        let (kind, rest) = word(line);
        let (seg, rest) = word(rest);
        match kind.unwrap_or_default() {
            "valid" => {
                let segs = segments(seg)?;
                let (a, rest) = word(rest);
                let (b, rest) = word(rest);
                let (from, to) = (date(a)?, date(b)?);
                if from > to || !rest.is_empty() {
                    return Err("`valid SEG FROM TO` needs FROM on or before TO and nothing after".into());
                }
                for s in segs.iter() {
                    let e = self.valid.entry(s).or_insert((from, to));
                    *e = (e.0.min(from), e.1.max(to));
                }
            }
            "hours" => {
                let segs = segments(seg)?;
                let (a, rest) = word(rest);
                let (b, rest) = word(rest);
                let (t, rest) = word(rest);
                let (from, to) = (date(a)?, date(b)?);
                let (open, close) = span(t)?;
                if from > to || !rest.is_empty() {
                    return Err("`hours SEG FROM TO HH:MM-HH:MM` needs FROM on or before TO and nothing after".into());
                }
                for segment in segs.iter() {
                    self.hours.push(Hours { segment, from, to, open, close });
                }
            }
            "closed" => {
                let segs = segments(seg)?;
                let (d, name) = word(rest);
                let d = date(d)?;
                if name.is_empty() {
                    return Err("a `closed` entry needs the holiday's name after the date".into());
                }
                for s in segs.iter() {
                    let day = self.days.entry((s, d)).or_default();
                    day.sessions.clear();
                    day.closed = Some(name.to_string());
                }
            }
            "session" => {
                let segs = segments(seg)?;
                let (d, rest) = word(rest);
                let (t, name) = word(rest);
                let d = date(d)?;
                let (open, close) = span(t)?;
                if name.is_empty() {
                    return Err("a `session` entry needs a name after the times, like `Muhurat trading`".into());
                }
                for s in segs.iter() {
                    self.days.entry((s, d)).or_default().sessions.push((open, close, name.to_string()));
                }
            }
            "source" => {
                segments(seg)?;
                self.sources.push(line.to_string());
            }
            other => return Err(format!("unknown entry {other:?}; {FORMAT_HINT}")),
        }
        Ok(())
    }

    /// The regular hours of `segment` on date `d`: the last `hours` line covering it, else (past
    /// the data) the line that reaches furthest, so unknown future weekdays count as sessions.
    fn regular(&self, segment: Segment, d: NaiveDate) -> Option<(NaiveTime, NaiveTime)> {
        let mine = || self.hours.iter().filter(|h| h.segment == segment);
        if let Some(h) = self.hours.iter().rev().find(|h| h.segment == segment && h.from <= d && d <= h.to) {
            return Some((h.open, h.close));
        }
        let last = mine().max_by_key(|h| h.to)?;
        (d > last.to).then_some((last.open, last.close))
    }

    /// The sessions of `segment` on IST date `d`, in opening order.
    pub fn sessions_on(&self, d: NaiveDate, segment: Segment) -> Vec<Session> {
        let day = self.days.get(&(segment, d));
        let mut out: Vec<Session> = match day {
            Some(day) if !day.sessions.is_empty() => day
                .sessions
                .iter()
                .map(|(open, close, name)| Session {
                    date: d,
                    segment,
                    open: *open,
                    close: *close,
                    kind: Kind::Special,
                    name: Some(name.clone()),
                })
                .collect(),
            Some(day) if day.closed.is_some() => Vec::new(),
            _ if weekday(d) => self
                .regular(segment, d)
                .map(|(open, close)| Session { date: d, segment, open, close, kind: Kind::Regular, name: None })
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        out.sort_by_key(|s| s.open);
        out
    }

    /// The holiday name when `segment` has no session on weekday `d`.
    pub fn closed_on(&self, d: NaiveDate, segment: Segment) -> Option<Closed> {
        if !weekday(d) || !self.sessions_on(d, segment).is_empty() {
            return None;
        }
        let name = self.days.get(&(segment, d)).and_then(|day| day.closed.clone());
        // Before the segment's data starts, a missing session is ignorance, not a holiday.
        if name.is_none() && self.valid.get(&segment).is_none_or(|v| d < v.0) {
            return None;
        }
        Some(Closed { date: d, segment, name: name.unwrap_or_else(|| "no session".into()) })
    }

    /// Sessions and closed weekdays of `segs` for `days` days from `from`.
    pub fn entries(&self, from: NaiveDate, days: u32, segs: Segments) -> Vec<Entry> {
        let mut out = Vec::new();
        for d in from.iter_days().take(days as usize) {
            for s in segs.iter() {
                let sessions = self.sessions_on(d, s);
                if sessions.is_empty() {
                    out.extend(self.closed_on(d, s).map(Entry::Closed));
                } else {
                    out.extend(sessions.into_iter().map(Entry::Session));
                }
            }
        }
        out
    }

    /// The sessions of `segs` that are open at or after `t`, soonest first (at most `n`; looks a
    /// year ahead).
    pub fn upcoming(&self, t: DateTime<Utc>, segs: Segments, n: usize) -> Vec<Session> {
        let start = ist::to_ist(&t).date_naive();
        let mut out = Vec::new();
        for d in start.iter_days().take(370) {
            let mut today: Vec<Session> =
                segs.iter().flat_map(|s| self.sessions_on(d, s)).filter(|s| s.closes_at() > t).collect();
            today.sort_by_key(|s| (s.open, s.segment));
            out.extend(today);
            if out.len() >= n {
                break;
            }
        }
        out.truncate(n);
        out
    }

    /// The next weekday on or after `from` on which one of `segs` is closed (a year ahead at most).
    pub fn next_holiday(&self, from: NaiveDate, segs: Segments) -> Option<Closed> {
        from.iter_days().take(370).find_map(|d| segs.iter().find_map(|s| self.closed_on(d, s)))
    }

    /// The span, widened by `lead` before each open, of overlapping sessions of `segs` containing
    /// `t`: `[start, end)`. Sessions never cross midnight, so the days around `t` suffice.
    pub fn busy_span(
        &self,
        t: DateTime<Utc>,
        segs: Segments,
        lead: Duration,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let day = ist::to_ist(&t).date_naive();
        let first = day.checked_sub_days(chrono::Days::new(2))?;
        let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = first
            .iter_days()
            .take(5)
            .flat_map(|d| segs.iter().flat_map(move |s| self.sessions_on(d, s)))
            .map(|s| (s.opens_at() - lead, s.closes_at()))
            .collect();
        spans.sort();
        let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for (a, b) in spans {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        merged.into_iter().find(|(a, b)| *a <= t && t < *b)
    }

    /// The last date the data covers for every one of `segs` (the earliest of their ends), if
    /// the calendar says.
    pub fn data_ends(&self, segs: Segments) -> Option<NaiveDate> {
        segs.iter().filter_map(|s| self.valid.get(&s).map(|v| v.1)).min()
    }

    /// The `source` lines, for `check` and the docs.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }
}

/// How many days ahead the end of the embedded data is announced.
pub const NOTICE_DAYS: i64 = 30;

/// When the data for `segs` ends within [`NOTICE_DAYS`] of `today` (or has ended): the last
/// covered date and a sentence for the log, `check` and Telegram.
pub fn end_notice(cal: &Calendar, segs: Segments, today: NaiveDate) -> Option<(NaiveDate, String)> {
    let end = cal.data_ends(segs)?;
    let left = (end - today).num_days();
    if left > NOTICE_DAYS {
        return None;
    }
    let when = if left < 0 { format!("ended on {end}") } else { format!("ends on {end}, in {left} days") };
    Some((
        end,
        format!(
            "the exchange calendar for {segs} {when}; after it every weekday counts as a regular session and \
             holidays and special sessions are unknown. Update dhan-keeper, or add the next year's dates to \
             `calendar_file` (see docs/calendar.md)"
        ),
    ))
}

/// A short human form of a session: `equity Tue 27 Jan 09:15–15:30 IST (Muhurat trading)`.
pub fn describe(s: &Session) -> String {
    let name = s.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
    format!(
        "{} {} {}–{} IST{name}",
        s.segment,
        s.date.format("%a %d %b"),
        s.open.format("%H:%M"),
        s.close.format("%H:%M")
    )
}

/// The line `/status` shows: the session in progress or the next one.
pub fn next_session_line(cal: &Calendar, segs: Segments, now: DateTime<Utc>) -> String {
    match cal.upcoming(now, segs, 1).first() {
        Some(s) if s.opens_at() <= now => format!("in session now: {}", describe(s)),
        Some(s) => describe(s),
        None => "none in the next year".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    fn hm(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").expect("time")
    }

    fn cal() -> Calendar {
        Calendar::embedded().expect("the embedded calendar parses")
    }

    fn times(c: &Calendar, day: &str, s: Segment) -> Vec<(String, String, Kind)> {
        c.sessions_on(d(day), s)
            .into_iter()
            .map(|s| (s.open.format("%H:%M").to_string(), s.close.format("%H:%M").to_string(), s.kind))
            .collect()
    }

    #[test]
    fn the_embedded_calendar_parses_and_covers_2025_and_2026() {
        let c = cal();
        for s in Segment::ALL {
            assert_eq!(c.data_ends(Segments::one(s)), Some(d("2026-12-31")), "{s}");
        }
        assert!(c.sources().iter().any(|l| l.starts_with("source equity 2026 ")), "each year names its source");
        assert!(c.sources().iter().any(|l| l.starts_with("source commodity 2025 ")));
    }

    #[test]
    fn known_dates_of_the_embedded_calendar() {
        let c = cal();
        use Segment::*;
        // Muhurat 2025: the afternoon, on the Diwali holiday.
        assert_eq!(times(&c, "2025-10-21", Equity), vec![("13:45".into(), "14:45".into(), Kind::Special)]);
        let muhurat = c.sessions_on(d("2025-10-21"), Equity).remove(0);
        assert_eq!(muhurat.name.as_deref(), Some("Muhurat trading"));
        // Muhurat 2024 in the evening, 2023 on a Sunday.
        assert_eq!(times(&c, "2024-11-01", Equity), vec![("18:00".into(), "19:00".into(), Kind::Special)]);
        assert_eq!(times(&c, "2023-11-12", Equity), vec![("18:15".into(), "19:15".into(), Kind::Special)]);
        // Budget Saturday 2025: equity 09:15-15:30, MCX 09:00-17:00, no currency session.
        assert_eq!(times(&c, "2025-02-01", Equity), vec![("09:15".into(), "15:30".into(), Kind::Special)]);
        assert_eq!(times(&c, "2025-02-01", Commodity), vec![("09:00".into(), "17:00".into(), Kind::Special)]);
        assert!(times(&c, "2025-02-01", Currency).is_empty());
        // Republic Day 2026: closed everywhere, with its name.
        for s in Segment::ALL {
            assert!(times(&c, "2026-01-26", s).is_empty(), "{s}");
            assert_eq!(c.closed_on(d("2026-01-26"), s).map(|c| c.name), Some("Republic Day".into()), "{s}");
        }
        // An ordinary Tuesday, and MCX's evening in and out of US daylight time.
        assert_eq!(times(&c, "2026-02-10", Equity), vec![("09:15".into(), "15:30".into(), Kind::Regular)]);
        assert_eq!(times(&c, "2026-02-10", Currency), vec![("09:00".into(), "17:00".into(), Kind::Regular)]);
        assert_eq!(times(&c, "2026-02-10", Commodity), vec![("09:00".into(), "23:55".into(), Kind::Regular)]);
        assert_eq!(times(&c, "2026-07-14", Commodity), vec![("09:00".into(), "23:30".into(), Kind::Regular)]);
        // MCX on Holi 2026: only the evening session.
        assert_eq!(times(&c, "2026-03-03", Commodity), vec![("17:00".into(), "23:55".into(), Kind::Special)]);
        assert!(times(&c, "2026-03-03", Equity).is_empty());
        // A weekend without a session is neither a session nor a "closed weekday".
        assert!(times(&c, "2026-02-14", Equity).is_empty());
        assert_eq!(c.closed_on(d("2026-02-14"), Equity), None);
    }

    #[test]
    fn weekdays_past_the_data_count_as_regular_sessions() {
        let c = cal();
        assert_eq!(times(&c, "2027-01-26", Segment::Equity), vec![("09:15".into(), "15:30".into(), Kind::Regular)]);
        assert_eq!(times(&c, "2027-01-26", Segment::Commodity), vec![("09:00".into(), "23:55".into(), Kind::Regular)]);
    }

    #[test]
    fn later_lines_override_earlier_ones() {
        let mut c = cal();
        c.apply(
            "# my broker's notice\n\
             closed equity 2026-02-10 Exchange outage\n\
             session equity 2026-01-26 10:00-11:00 Test session\n\
             closed equity 2025-10-21 No Muhurat for me\n\
             session equity 2025-10-21 18:00-19:00 Muhurat (moved)\n\
             hours equity 2027-01-01 2027-12-31 09:15-15:30\n\
             valid equity 2027-01-01 2027-12-31\n",
        )
        .expect("good lines");
        assert!(times(&c, "2026-02-10", Segment::Equity).is_empty());
        assert_eq!(c.closed_on(d("2026-02-10"), Segment::Equity).map(|c| c.name), Some("Exchange outage".into()));
        assert_eq!(times(&c, "2026-01-26", Segment::Equity), vec![("10:00".into(), "11:00".into(), Kind::Special)]);
        assert_eq!(times(&c, "2025-10-21", Segment::Equity), vec![("18:00".into(), "19:00".into(), Kind::Special)]);
        assert_eq!(c.data_ends(Segments::one(Segment::Equity)), Some(d("2027-12-31")));
        assert_eq!(c.data_ends(Segments::ALL), Some(d("2026-12-31")), "the earliest end of the chosen segments");
    }

    #[test]
    fn bad_lines_are_reported_with_their_numbers_and_nothing_is_applied() {
        let mut c = cal();
        let text = "closed equity 2026-02-10 Fine\n\
                    \n\
                    closed equity 2026-02-30 Leap\n\
                    session equity 2026-02-11 15:00-14:00 Backwards\n\
                    session stocks 2026-02-11 10:00-11:00 Wrong segment\n\
                    holiday equity 2026-02-12 Typo\n\
                    closed equity 2026-02-13\n";
        let errs = c.apply(text).expect_err("bad lines");
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7]);
        assert!(errs[0].to_string().starts_with("line 3: \"2026-02-30\" is not a date"), "{}", errs[0]);
        assert!(errs[1].message.contains("open before the close"), "{}", errs[1]);
        assert!(errs[2].message.contains("unknown segment \"stocks\""), "{}", errs[2]);
        assert!(errs[3].message.contains("unknown entry \"holiday\""), "{}", errs[3]);
        assert!(errs[4].message.contains("needs the holiday's name"), "{}", errs[4]);
        assert_eq!(times(&c, "2026-02-10", Segment::Equity).len(), 1, "the good line was not applied either");
    }

    #[test]
    fn json_shapes_match_the_issue() {
        let c = cal();
        let e = c.entries(d("2025-10-21"), 1, Segments::one(Segment::Equity));
        assert_eq!(
            serde_json::to_string(&e[0].to_json()).expect("json"),
            r#"{"close":"14:45","date":"2025-10-21","kind":"special","name":"Muhurat trading","open":"13:45","segment":"equity"}"#
        );
        let e = c.entries(d("2026-01-26"), 1, Segments::one(Segment::Equity));
        assert_eq!(
            e[0].to_json(),
            serde_json::json!({"date":"2026-01-26","segment":"equity","closed":true,"name":"Republic Day"})
        );
        let regular = c.entries(d("2026-01-27"), 1, Segments::one(Segment::Equity));
        assert_eq!(
            regular[0].to_json(),
            serde_json::json!({"date":"2026-01-27","segment":"equity","open":"09:15","close":"15:30","kind":"regular"})
        );
    }

    #[test]
    fn upcoming_sessions_and_the_next_holiday() {
        let c = cal();
        // Friday 2026-01-23 16:00 IST: equity is closed; Monday is Republic Day.
        let t = at_ist(d("2026-01-23"), hm("16:00"));
        let next = c.upcoming(t, Segments::one(Segment::Equity), 2);
        assert_eq!(next[0].date, d("2026-01-27"));
        assert_eq!(next[1].date, d("2026-01-28"));
        assert_eq!(
            c.next_holiday(d("2026-01-23"), Segments::one(Segment::Equity)).map(|h| h.date),
            Some(d("2026-01-26"))
        );
        // During a session, that session comes first.
        let inside = at_ist(d("2026-01-27"), hm("10:00"));
        assert_eq!(c.upcoming(inside, Segments::one(Segment::Equity), 1)[0].date, d("2026-01-27"));
    }

    #[test]
    fn the_end_of_the_data_is_announced_within_thirty_days() {
        let c = cal();
        let eq = Segments::one(Segment::Equity);
        assert_eq!(end_notice(&c, eq, d("2026-11-30")), None, "31 days ahead");
        let (end, text) = end_notice(&c, eq, d("2026-12-01")).expect("30 days ahead");
        assert_eq!(end, d("2026-12-31"));
        assert!(text.contains("ends on 2026-12-31, in 30 days") && text.contains("calendar_file"), "{text}");
        let (_, text) = end_notice(&c, Segments::ALL, d("2027-01-05")).expect("after the end");
        assert!(text.contains("ended on 2026-12-31"), "{text}");
        let mut extended = cal();
        extended.apply("valid equity 2027-01-01 2027-12-31\n").expect("good");
        assert_eq!(end_notice(&extended, eq, d("2026-12-01")), None, "a calendar_file can extend the data");
    }

    #[test]
    fn busy_spans_merge_segments_and_include_the_lead() {
        let c = cal();
        let lead = Duration::minutes(15);
        let t = at_ist(d("2026-02-10"), hm("16:00"));
        assert_eq!(c.busy_span(t, Segments::one(Segment::Equity), lead), None);
        let (a, b) = c.busy_span(t, Segments::ALL, lead).expect("MCX is open");
        assert_eq!((a, b), (at_ist(d("2026-02-10"), hm("08:45")), at_ist(d("2026-02-10"), hm("23:55"))));
        let early = at_ist(d("2026-02-10"), hm("09:05"));
        assert!(c.busy_span(early, Segments::one(Segment::Equity), lead).is_some(), "pre-open is avoided");
        assert!(c.busy_span(at_ist(d("2026-02-10"), hm("08:59")), Segments::one(Segment::Equity), lead).is_none());
    }
}
