//! Counters for `GET /metrics`, in Prometheus text format. Plain atomics and one small map: no
//! metrics crate for a dozen numbers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The daemon's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    rotations: Mutex<BTreeMap<&'static str, u64>>,
    failures: Mutex<BTreeMap<&'static str, u64>>,
    last_success: AtomicI64,
    /// `on_refresh` failures; shared with the hook task.
    pub hook_failures: Arc<AtomicU64>,
}

impl Metrics {
    /// A new token arrived by `source` (totp, renew, consent, manual) at unix time `at`.
    pub fn rotation(&self, source: &'static str, at: i64) {
        *self.rotations.lock().unwrap_or_else(|e| e.into_inner()).entry(source).or_default() += 1;
        self.last_success.store(at, Ordering::Relaxed);
    }

    /// An attempt failed for `reason` (a [`crate::dhan::DhanError::reason`] or our own).
    pub fn failure(&self, reason: &'static str) {
        *self.failures.lock().unwrap_or_else(|e| e.into_inner()).entry(reason).or_default() += 1;
    }

    /// Renders everything, with the token's expiry (unix seconds) and the time now.
    pub fn render(&self, expires_at: Option<i64>, now: i64, telegram_send_failures: u64) -> String {
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, String)>| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in lines {
                let _ = writeln!(s, "{name}{labels} {value}");
            }
        };
        let exp = expires_at.map(|e| vec![(String::new(), e.to_string())]).unwrap_or_default();
        metric(
            "dhan_keeper_token_expiry_timestamp_seconds",
            "gauge",
            "When the current token expires (unix time).",
            exp,
        );
        let left = expires_at.map(|e| vec![(String::new(), (e - now).max(0).to_string())]).unwrap_or_default();
        metric("dhan_keeper_token_seconds_to_expiry", "gauge", "Seconds until the current token expires.", left);
        let by = |m: &Mutex<BTreeMap<&'static str, u64>>, label: &str| {
            m.lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, v)| (format!("{{{label}=\"{k}\"}}"), v.to_string()))
                .collect::<Vec<_>>()
        };
        metric(
            "dhan_keeper_rotations_total",
            "counter",
            "New tokens obtained, by source.",
            by(&self.rotations, "source"),
        );
        metric(
            "dhan_keeper_rotation_failures_total",
            "counter",
            "Failed attempts to get a token, by reason.",
            by(&self.failures, "reason"),
        );
        let last = self.last_success.load(Ordering::Relaxed);
        let last = if last > 0 { vec![(String::new(), last.to_string())] } else { vec![] };
        metric(
            "dhan_keeper_last_success_timestamp_seconds",
            "gauge",
            "When the last new token arrived (unix time).",
            last,
        );
        metric(
            "dhan_keeper_telegram_send_failures_total",
            "counter",
            "Telegram sends that failed (each retry counts).",
            vec![(String::new(), telegram_send_failures.to_string())],
        );
        metric(
            "dhan_keeper_hook_failures_total",
            "counter",
            "on_refresh runs that failed or timed out.",
            vec![(String::new(), self.hook_failures.load(Ordering::Relaxed).to_string())],
        );
        s
    }
}
