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
mod tests;
