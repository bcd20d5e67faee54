//! The calendar's vocabulary: segments, sessions, closed days, listing entries, line errors.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use super::at_ist;

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
