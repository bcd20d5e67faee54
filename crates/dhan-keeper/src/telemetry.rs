//! Logging: human-readable or JSON lines on stderr, filtered by `RUST_LOG`.
//!
//! stdout is reserved for what a command prints on purpose (`dhan-keeper token` prints the token
//! for a script to capture), so logs never go there. Timestamps are IST with the offset written
//! out (`2026-11-26T08:30:00.123+05:30`) by default: the trader thinks in market time, and a
//! VPS in UTC would otherwise log every rotation 5h30m "off". `--log-time utc` for log shippers.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

use crate::clock::{Clock, SystemClock};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The time zone of log timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogTime {
    /// India Standard Time, with its +05:30 offset.
    #[default]
    Ist,
    /// UTC, with a Z.
    Utc,
}

impl FormatTime for LogTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let now = SystemClock.now();
        match self {
            LogTime::Ist => write!(w, "{}", crate::ist::to_ist(&now).format("%Y-%m-%dT%H:%M:%S%.3f%:z")),
            LogTime::Utc => write!(w, "{}", now.format("%Y-%m-%dT%H:%M:%S%.3fZ")),
        }
    }
}

/// Installs the global subscriber. `default_filter` applies when `RUST_LOG` is unset.
pub fn init(format: LogFormat, time: LogTime, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_timer(time)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
