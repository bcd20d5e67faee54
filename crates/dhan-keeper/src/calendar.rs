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

mod types;

pub use types::{Closed, Entry, Kind, LineError, Segment, Segments, Session};

/// The calendar compiled into the binary.
pub const EMBEDDED: &str = include_str!("../data/calendar.cal");

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

    /// Applies one non-blank, comment-free line; the entry kind picks the handler, and each
    /// handler checks its own fields so the message names what that kind of line needs.
    fn apply_line(&mut self, line: &str) -> Result<(), String> {
        let (kind, rest) = word(line);
        let (seg, rest) = word(rest);
        match kind.unwrap_or_default() {
            "valid" => self.apply_valid(seg, rest),
            "hours" => self.apply_hours(seg, rest),
            "closed" => self.apply_closed(seg, rest),
            "session" => self.apply_session(seg, rest),
            "source" => {
                segments(seg)?;
                self.sources.push(line.to_string());
                Ok(())
            }
            other => Err(format!("unknown entry {other:?}; {FORMAT_HINT}")),
        }
    }

    /// `valid SEG FROM TO`: widens the span the data covers, so overlapping files only extend it.
    fn apply_valid(&mut self, seg: Option<&str>, rest: &str) -> Result<(), String> {
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
        Ok(())
    }

    /// `hours SEG FROM TO HH:MM-HH:MM`: appended, so a later line overrides an earlier one.
    fn apply_hours(&mut self, seg: Option<&str>, rest: &str) -> Result<(), String> {
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
        Ok(())
    }

    /// `closed SEG DATE NAME`: a holiday replaces any sessions an earlier line gave that day.
    fn apply_closed(&mut self, seg: Option<&str>, rest: &str) -> Result<(), String> {
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
        Ok(())
    }

    /// `session SEG DATE HH:MM-HH:MM NAME`: a special session (Muhurat, Budget day) adds to the day.
    fn apply_session(&mut self, seg: Option<&str>, rest: &str) -> Result<(), String> {
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
mod tests;
