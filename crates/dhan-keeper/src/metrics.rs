//! Counters for `GET /metrics`, in Prometheus text format. Plain atomics and one small map: no
//! metrics crate for a dozen numbers.
//!
//! Each account's keeper has its own [`Metrics`]; with several accounts every series of an
//! account carries an `account` label, and each metric's `# HELP`/`# TYPE` is written once with
//! all accounts' samples under it, as the text format requires. A classic single-account daemon
//! writes the same series as always, without the label.

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

/// One metric and its samples: `(labels inside the braces, value)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The metric's name.
    pub name: &'static str,
    /// `gauge` or `counter`.
    pub kind: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    /// The samples: labels without braces (`source="totp"`, or empty) and the value.
    pub samples: Vec<(String, String)>,
}

fn family(name: &'static str, kind: &'static str, help: &'static str, samples: Vec<(String, String)>) -> Family {
    Family { name, kind, help, samples }
}

fn one(value: impl ToString) -> Vec<(String, String)> {
    vec![(String::new(), value.to_string())]
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

    /// This account's metrics, with the token's expiry (unix seconds) and the time now.
    pub fn families(&self, expires_at: Option<i64>, now: i64) -> Vec<Family> {
        let by = |m: &Mutex<BTreeMap<&'static str, u64>>, label: &str| {
            m.lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, v)| (format!("{label}=\"{k}\""), v.to_string()))
                .collect::<Vec<_>>()
        };
        let last = self.last_success.load(Ordering::Relaxed);
        vec![
            family(
                "dhan_keeper_token_expiry_timestamp_seconds",
                "gauge",
                "When the current token expires (unix time).",
                expires_at.map(one).unwrap_or_default(),
            ),
            family(
                "dhan_keeper_token_seconds_to_expiry",
                "gauge",
                "Seconds until the current token expires.",
                expires_at.map(|e| one((e - now).max(0))).unwrap_or_default(),
            ),
            family(
                "dhan_keeper_rotations_total",
                "counter",
                "New tokens obtained, by source.",
                by(&self.rotations, "source"),
            ),
            family(
                "dhan_keeper_rotation_failures_total",
                "counter",
                "Failed attempts to get a token, by reason.",
                by(&self.failures, "reason"),
            ),
            family(
                "dhan_keeper_last_success_timestamp_seconds",
                "gauge",
                "When the last new token arrived (unix time).",
                if last > 0 { one(last) } else { vec![] },
            ),
            family(
                "dhan_keeper_hook_failures_total",
                "counter",
                "on_refresh runs that failed or timed out.",
                one(self.hook_failures.load(Ordering::Relaxed)),
            ),
        ]
    }
}

/// The whole `/metrics` text: every account's families (labelled `account="…"` when the account
/// has a label), merged by metric name in first-seen order, then the shared Telegram counter.
pub fn render(accounts: Vec<(Option<String>, Vec<Family>)>, telegram_send_failures: u64) -> String {
    let mut merged: Vec<Family> = Vec::new();
    for (account, families) in accounts {
        for f in families {
            let samples =
                f.samples.into_iter().map(|(labels, value)| (with_account(account.as_deref(), &labels), value));
            match merged.iter_mut().find(|m| m.name == f.name) {
                Some(m) => m.samples.extend(samples),
                None => merged.push(Family { samples: samples.collect(), ..f }),
            }
        }
    }
    // Where it always stood, before the hook's counter; the bot is shared, so no account label.
    let at = merged.iter().position(|f| f.name == "dhan_keeper_hook_failures_total").unwrap_or(merged.len());
    merged.insert(
        at,
        family(
            "dhan_keeper_telegram_send_failures_total",
            "counter",
            "Telegram sends that failed (each retry counts).",
            one(telegram_send_failures),
        ),
    );
    let mut s = String::new();
    for f in merged {
        let _ = writeln!(s, "# HELP {} {}\n# TYPE {} {}", f.name, f.help, f.name, f.kind);
        for (labels, value) in f.samples {
            if labels.is_empty() {
                let _ = writeln!(s, "{} {value}", f.name);
            } else {
                let _ = writeln!(s, "{}{{{labels}}} {value}", f.name);
            }
        }
    }
    s
}

fn with_account(account: Option<&str>, labels: &str) -> String {
    match (account, labels.is_empty()) {
        (None, _) => labels.to_string(),
        (Some(a), true) => format!("account=\"{a}\""),
        (Some(a), false) => format!("account=\"{a}\",{labels}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_of_an_account_is_labelled_and_each_metric_described_once() {
        let (a, b) = (Metrics::default(), Metrics::default());
        a.rotation("totp", 100);
        b.failure("timeout");
        let text = render(
            vec![(Some("mom".into()), a.families(Some(200), 150)), (Some("dad".into()), b.families(None, 150))],
            0,
        );
        assert_eq!(text.matches("# TYPE dhan_keeper_rotations_total counter").count(), 1, "{text}");
        assert!(text.contains("dhan_keeper_rotations_total{account=\"mom\",source=\"totp\"} 1"), "{text}");
        assert!(text.contains("dhan_keeper_rotation_failures_total{account=\"dad\",reason=\"timeout\"} 1"), "{text}");
        assert!(text.contains("dhan_keeper_token_seconds_to_expiry{account=\"mom\"} 50"), "{text}");
        assert!(text.contains("dhan_keeper_hook_failures_total{account=\"dad\"} 0"), "{text}");
        let single = render(vec![(None, a.families(Some(200), 150))], 2);
        assert!(single.contains("dhan_keeper_token_seconds_to_expiry 50"), "{single}");
        assert!(single.contains("dhan_keeper_telegram_send_failures_total 2"), "{single}");
    }
}
