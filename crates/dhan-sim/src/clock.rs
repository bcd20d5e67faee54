//! The simulator's notion of "now": the real clock plus an adjustable offset, so tests can make
//! Dhan's clock disagree with the client's (the "clock 40 s off" fault) and the `Date` header,
//! TOTP checks and token expiry all follow.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Wall clock with an offset.
#[derive(Debug, Default)]
pub struct SimClock(Mutex<Duration>);

impl SimClock {
    /// The simulator's current time.
    #[allow(clippy::disallowed_methods)] // the simulator's one wall-clock read
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the simulator run `offset` ahead of the real clock (negative: behind).
    pub fn set_offset(&self, offset: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = offset;
    }

    /// The `Date` header value for now.
    pub fn http_date(&self) -> String {
        self.now().format("%a, %d %b %Y %H:%M:%S GMT").to_string()
    }
}

/// The real wall clock, unshifted, for timestamps that are compared with other processes' (file
/// modification times in the benchmark). Not used for anything the simulator decides.
#[allow(clippy::disallowed_methods)] // measurement only
pub fn real_now() -> std::time::SystemTime {
    std::time::SystemTime::now()
}
