//! Fault injection: "the next N calls to this route fail like this".
//!
//! Routes are named by the last segment of Dhan's path (`generateAccessToken`, `profile`,
//! `holdings`, ...) or `*` for any route. Faults are consumed in order, one per call.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One injected failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// Answer with this HTTP status and a body like Dhan's for it (500 → DH-908, 502/503 → an
    /// HTML gateway page).
    Status {
        /// The status code.
        status: u16,
    },
    /// Wait this long, then answer normally (longer than the client timeout = a hang).
    Delay {
        /// Milliseconds.
        ms: u64,
    },
    /// HTTP 200 with an HTML body where JSON was expected.
    Garbage,
    /// HTTP 200 with JSON cut off half way.
    Truncated,
    /// Close the connection without answering.
    Drop,
    /// 429 DH-904.
    RateLimit,
    /// A live token rejected once as if it were dead (seen live soon after a mint, then accepted
    /// again): 401 DH-901 or 400 DH-906 "Invalid Token".
    RejectToken {
        /// Which rejection.
        code: TokenRejection,
    },
    /// Wait, then answer with this reply; on the mint route `counts_as_mint` restarts Dhan's
    /// window as an attempt would (the ~10 s HTTP 200 `{message, status}` with no token seen live).
    SlowReply {
        /// Milliseconds.
        ms: u64,
        /// HTTP status.
        status: u16,
        /// The body.
        body: serde_json::Value,
        /// Whether Dhan counted it as a mint attempt.
        #[serde(default)]
        counts_as_mint: bool,
    },
    /// Any JSON reply, e.g. `{"status":"error","message":"Invalid TOTP"}` with status 200.
    Json {
        /// HTTP status.
        status: u16,
        /// The body.
        body: serde_json::Value,
    },
}

/// The two ways a live token was seen rejected once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRejection {
    /// 401 DH-901.
    Dh901,
    /// 400 DH-906 "Invalid Token".
    Dh906,
}

/// Pending faults per route.
#[derive(Debug, Default)]
pub struct Faults(Mutex<HashMap<String, VecDeque<Fault>>>);

impl Faults {
    /// Queues `fault` for the next `count` calls to `route` (`*` = any route).
    pub fn inject(&self, route: &str, fault: Fault, count: usize) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let q = map.entry(route.to_string()).or_default();
        q.extend(std::iter::repeat_n(fault, count));
    }

    /// Takes the next fault for `route`, falling back to `*`.
    pub fn take(&self, route: &str) -> Option<Fault> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = map.get_mut(route).and_then(VecDeque::pop_front) {
            return Some(f);
        }
        map.get_mut("*").and_then(VecDeque::pop_front)
    }

    /// Forgets every pending fault.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// How many faults are still queued for `route`.
    pub fn pending(&self, route: &str) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(route).map_or(0, VecDeque::len)
    }
}
