//! What the Dhan client hands back besides errors: a minted token, a consent id, a reachability
//! probe, the static-IP status.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use crate::secret::Secret;

/// A token Dhan just issued.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The access token.
    pub access_token: Secret,
    /// When it dies: the earlier of `expiryTime` (IST) and the JWT's `exp`.
    pub expires_at: DateTime<FixedOffset>,
    /// Whose token it is, from the body or the JWT.
    pub client_id: Option<String>,
    /// Account holder's name, when Dhan sent it.
    pub client_name: Option<String>,
}

/// What `GET /v2/ip/getIP` says about this machine and the account's static IPs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IpStatus {
    /// The primary whitelisted address.
    pub primary_ip: Option<String>,
    /// The secondary whitelisted address.
    pub secondary_ip: Option<String>,
    /// The address Dhan sees this machine calling from.
    pub detected_ip: Option<String>,
    /// `ipMatchStatus == MATCH`.
    pub matched: Option<bool>,
    /// Whether Dhan accepts API orders from this machine.
    pub orders_allowed: Option<bool>,
}

impl IpStatus {
    /// Whether Dhan says orders from here are refused (an explicit `false`, or a mismatch).
    pub fn orders_refused(&self) -> bool {
        self.orders_allowed == Some(false) || (self.orders_allowed.is_none() && self.matched == Some(false))
    }

    /// One line for a person: `127.0.0.1 matches the primary static IP; orders allowed`.
    pub fn summary(&self) -> String {
        let seen = self.detected_ip.as_deref().unwrap_or("this machine");
        let registered: Vec<&str> =
            [self.primary_ip.as_deref(), self.secondary_ip.as_deref()].into_iter().flatten().collect();
        let registered = if registered.is_empty() { "none".to_string() } else { registered.join(", ") };
        if self.orders_refused() {
            format!("{seen} is not a registered static IP ({registered}); Dhan will refuse API orders from here")
        } else if self.orders_allowed == Some(true) || self.matched == Some(true) {
            format!("{seen} is a registered static IP; orders allowed")
        } else {
            format!("registered static IPs: {registered}")
        }
    }
}

/// A consent id from `generate-consent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentId(pub String);

/// What a reachability probe saw.
#[derive(Debug, Clone)]
pub struct Probe {
    /// HTTP status of the probe.
    pub status: u16,
    /// Round trip time.
    pub rtt: Duration,
    /// The server's `Date` header.
    pub server_date: Option<DateTime<Utc>>,
}

impl Probe {
    /// Clock offsets beyond this make TOTP codes fail: `check` fails and `run` warns. A code
    /// lives 30 s and Dhan accepts little or no skew.
    pub const CLOCK_FAIL_SECS: f64 = 10.0;
    /// Clock offsets beyond this are worth a warning from `check`.
    pub const CLOCK_WARN_SECS: f64 = 3.0;

    /// How many seconds this machine's clock is behind the server's (negative: ahead), for a
    /// probe sent at `sent_at` by this machine's clock. Uses the round trip's midpoint, and adds
    /// 0.5 s because `Date` truncates to whole seconds; good to about ±0.5 s.
    pub fn clock_offset_secs(&self, sent_at: DateTime<Utc>) -> Option<f64> {
        let midpoint = sent_at + chrono::Duration::from_std(self.rtt / 2).unwrap_or_default();
        self.server_date.map(|server| (server - midpoint).num_milliseconds() as f64 / 1000.0 + 0.5)
    }
}
