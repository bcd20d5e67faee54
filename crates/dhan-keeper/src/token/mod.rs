//! The token dhan-keeper keeps: what it is, where it came from, when it dies; and its file.

mod lock;
mod store;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

pub use lock::{InstanceLock, LockError};
pub use store::{Access, MAX_TOKEN_FILE};
pub use store::{StoreError, TokenStore};
#[cfg(test)]
pub(crate) use store::{parse as parse_file, render as render_file};
pub(crate) use store::{recover_temps, remove_stale_temps, write_atomic};

use crate::dhan::Minted;
use crate::secret::Secret;

/// How a token was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenSource {
    /// `generateAccessToken` with TOTP + PIN.
    Totp,
    /// The API-key consent flow.
    Consent,
    /// `RenewToken`.
    Renew,
    /// Pasted by the trader.
    Manual,
}

impl TokenSource {
    /// The name used in the token file, messages and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Totp => "totp",
            TokenSource::Consent => "consent",
            TokenSource::Renew => "renew",
            TokenSource::Manual => "manual",
        }
    }
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An access token and what we know about it.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token itself.
    pub access_token: Secret,
    /// When it stops working.
    pub expires_at: DateTime<FixedOffset>,
    /// Whose account it opens.
    pub client_id: Option<String>,
    /// When we got it (absent in files written by the original prototype).
    pub obtained_at: Option<DateTime<FixedOffset>>,
    /// How we got it (absent in files written by the original prototype).
    pub source: Option<TokenSource>,
}

/// Why a token Dhan issued is not taken in. Neither is Dhan's error: the token was issued fine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// It opens another account than the configured one.
    #[error("Dhan issued a token for client {issued_for}, not {expected}; check client_id in the config")]
    WrongClient {
        /// Whose token it is.
        issued_for: String,
        /// The configured client id.
        expected: String,
    },
    /// It had already expired when it arrived.
    #[error("the token had already expired when it arrived (is this machine's clock right? dhan-keeper check)")]
    AlreadyExpired,
}

impl Token {
    /// The one check every new token passes, whichever way it came (the daemon, `refresh`, the
    /// demo): it is for `expected_client` (when Dhan says whose it is) and still alive at `now`.
    pub fn accept(m: Minted, expected_client: &str, source: TokenSource, now: DateTime<Utc>) -> Result<Self, Refused> {
        if let Some(other) = m.client_id.as_deref().filter(|c| *c != expected_client) {
            return Err(Refused::WrongClient { issued_for: other.to_string(), expected: expected_client.to_string() });
        }
        let token = Self::from_minted(m, source, now);
        if token.is_expired(now) {
            return Err(Refused::AlreadyExpired);
        }
        Ok(token)
    }

    /// A token Dhan just issued, obtained at `now`.
    pub fn from_minted(m: Minted, source: TokenSource, now: DateTime<Utc>) -> Self {
        Self {
            access_token: m.access_token,
            expires_at: m.expires_at,
            client_id: m.client_id,
            obtained_at: Some(crate::ist::to_ist(&now)),
            source: Some(source),
        }
    }

    /// Time left at `now` (negative once expired).
    pub fn remaining(&self, now: DateTime<Utc>) -> chrono::Duration {
        self.expires_at.with_timezone(&Utc) - now
    }

    /// Whether it has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.remaining(now) <= chrono::Duration::zero()
    }
}
