//! `dhan-keeper calendar`: the sessions and closed days the daemon plans around, so a trader can
//! see what it believes (and correct it with `calendar_file`).

use std::process::ExitCode;

use chrono::NaiveDate;

use crate::calendar::{self, Segments};
use crate::clock::Clock;
use crate::config::Config;
use crate::ist;

/// The longest listing `--days` allows.
pub const MAX_DAYS: u32 = 3660;

/// Lists sessions and closed weekdays. `segment` is a name, a comma list or `all` (default: the
/// segments `market_hours` names, else equity); `from` is an IST date (default today).
pub fn calendar(
    cfg: &Config,
    clock: &dyn Clock,
    segment: Option<&str>,
    from: Option<&str>,
    days: u32,
    json: bool,
) -> ExitCode {
    let segs = match segment.map(str::trim) {
        None => cfg.calendar_segments(),
        Some(s) if s.eq_ignore_ascii_case("all") => Segments::ALL,
        Some(s) => match Segments::parse_list(s) {
            Ok(segs) => segs,
            Err(bad) => {
                eprintln!("error: --segment {bad:?} is not a segment; use equity, commodity, currency or all");
                return ExitCode::from(2);
            }
        },
    };
    let from = match from {
        None => ist::to_ist(&clock.now()).date_naive(),
        Some(s) => match NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
            Ok(d) => d,
            Err(_) => {
                eprintln!("error: --from {s:?} is not a date; write YYYY-MM-DD (IST)");
                return ExitCode::from(2);
            }
        },
    };
    if days == 0 || days > MAX_DAYS {
        eprintln!("error: --days must be between 1 and {MAX_DAYS}");
        return ExitCode::from(2);
    }
    let entries = cfg.calendar.entries(from, days, segs);
    if json {
        let list: Vec<serde_json::Value> = entries.iter().map(calendar::Entry::to_json).collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for e in &entries {
            println!("{}", e.to_text());
        }
        if let Some((_, notice)) = calendar::end_notice(&cfg.calendar, segs, from) {
            eprintln!("note: {notice}");
        }
    }
    ExitCode::SUCCESS
}
