//! Reading (not verifying) the claims of a Dhan access token.
//!
//! Dhan's tokens are JWTs whose `exp` is the most reliable expiry (`exp - iat = 86400`), and whose
//! `dhanClientId` says whose account the token opens. We only decode the payload; the signature is
//! Dhan's business.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

/// The claims dhan-keeper uses.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Claims {
    /// Expiry, Unix seconds.
    pub exp: Option<i64>,
    /// Issued at, Unix seconds.
    pub iat: Option<i64>,
    /// Whose token it is.
    pub dhan_client_id: Option<String>,
    /// `APP` (minted by API) or `SELF` (Dhan Web).
    pub token_consumer_type: Option<String>,
}

impl Claims {
    /// Whether Dhan's RenewToken can renew this token: only Dhan-Web (`SELF`) tokens can; `APP`
    /// (TOTP-minted and consent) tokens get HTTP 500 DH-905. Unknown types are tried once.
    pub fn renewable(&self) -> bool {
        !self.token_consumer_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("APP"))
    }

    /// `exp` as an instant.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        Utc.timestamp_opt(self.exp?, 0).single()
    }
}

/// Whether `s` has the shape of a JWT (three base64url parts, the middle one JSON).
pub fn looks_like_jwt(s: &str) -> bool {
    decode(s).is_some()
}

/// Decodes the payload of a JWT, or `None` when it is not one.
pub fn decode(token: &str) -> Option<Claims> {
    let mut parts = token.trim().split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.is_empty() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(payload: &str) -> String {
        format!("{}.{}.sig", URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"HS512"}"#), URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn reads_dhan_claims() {
        let t = make(
            r#"{"iss":"dhan","partnerId":"","exp":1766035810,"iat":1765949410,"tokenConsumerType":"SELF","webhookUrl":"","dhanClientId":"1000000001"}"#,
        );
        let c = decode(&t).expect("decodes");
        assert_eq!(c.exp, Some(1_766_035_810));
        assert_eq!(c.dhan_client_id.as_deref(), Some("1000000001"));
        assert_eq!(c.token_consumer_type.as_deref(), Some("SELF"));
        assert_eq!(c.expires_at().map(|t| t.timestamp()), Some(1_766_035_810));
    }

    #[test]
    fn rejects_non_jwts() {
        for s in ["", "abc", "a.b", "a.b.c.d", "a.!!!.c", &format!("x.{}.y", URL_SAFE_NO_PAD.encode("not json"))] {
            assert!(decode(s).is_none(), "{s:?}");
        }
    }
}
