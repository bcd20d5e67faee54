//! RFC 6238 time-based one-time passwords: HMAC-SHA1, 30 s steps, 6 digits.
//!
//! Dhan's `generateAccessToken` takes the same code the trader's authenticator app shows. Written
//! out here (about 40 lines over `hmac` + `sha1`) and checked against the RFC's Appendix B vectors,
//! so there is no extra crate between the secret and the wire. The simulator verifies codes with
//! the independent `totp-rs` crate, so a bug here cannot hide behind a matching bug there.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Seconds per TOTP window.
pub const STEP_SECS: i64 = 30;

/// Below this many seconds left in a window, [`TotpSecret::code_for_submission`] uses the next
/// window's code: a code sent with 1 s left often arrives after Dhan has moved on.
pub const MIN_SECS_LEFT: i64 = 2;

/// A decoded TOTP shared secret.
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

/// Why a TOTP secret was refused. Never carries the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpSecretError {
    /// Nothing left after removing spaces.
    #[error("it is empty")]
    Empty,
    /// A character outside the base32 alphabet, at this 1-based position.
    #[error("character {position} is not base32 (only letters A-Z and digits 2-7 are allowed)")]
    NotBase32 {
        /// 1-based position in the normalised secret.
        position: usize,
    },
    /// Too short to be a real authenticator secret.
    #[error("it decodes to only {bytes} bytes; authenticator secrets are at least 10 bytes (16 base32 characters)")]
    TooShort {
        /// Decoded length.
        bytes: usize,
    },
}

/// A code and how long it stays valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// The six digits.
    pub digits: String,
    /// Seconds left in the window the code belongs to, counted from the instant asked about.
    pub secs_left: i64,
}

impl TotpSecret {
    /// The raw secret, for [`Config::credentials_id`](crate::config::Config::credentials_id) only.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Parses a base32 secret as Dhan shows it. Spaces, dashes, lower case and `=` padding are
    /// accepted and normalised away.
    pub fn parse(raw: &str) -> Result<Self, TotpSecretError> {
        let normalised: String = raw
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-' && *c != '=')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if normalised.is_empty() {
            return Err(TotpSecretError::Empty);
        }
        let bytes = base32_decode(&normalised)?;
        if bytes.len() < 10 {
            return Err(TotpSecretError::TooShort { bytes: bytes.len() });
        }
        Ok(Self(bytes))
    }

    /// From raw key bytes (the RFC test vectors are given this way).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The secret in canonical base32 (upper case, no padding), to scrub it from text that
    /// leaves the process (a hook's output).
    pub(crate) fn to_base32(&self) -> String {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut out = String::new();
        let (mut acc, mut bits) = (0u32, 0u32);
        for b in &self.0 {
            acc = (acc << 8) | u32::from(*b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
            }
        }
        if bits > 0 {
            out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
        }
        out
    }

    /// The code for the window containing `at`, and its seconds left.
    pub fn code_at(&self, at: DateTime<Utc>) -> Code {
        let t = at.timestamp();
        let counter = t.div_euclid(STEP_SECS);
        Code { digits: hotp(&self.0, counter as u64, 6), secs_left: STEP_SECS - t.rem_euclid(STEP_SECS) }
    }

    /// The code to send to Dhan at `at`: the current one, or the next window's when fewer than
    /// [`MIN_SECS_LEFT`] seconds remain (`secs_left` then counts to the end of that next window).
    pub fn code_for_submission(&self, at: DateTime<Utc>) -> Code {
        let current = self.code_at(at);
        if current.secs_left >= MIN_SECS_LEFT {
            return current;
        }
        let next = self.code_at(at + chrono::Duration::seconds(current.secs_left));
        Code { digits: next.digits, secs_left: current.secs_left + STEP_SECS }
    }
}

/// RFC 4226 HOTP with HMAC-SHA1 and `digits` digits (6 or 8).
fn hotp(key: &[u8], counter: u64, digits: u32) -> String {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        // HMAC accepts keys of any length; this branch is unreachable in practice.
        return "0".repeat(digits as usize);
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = (h[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[offset] & 0x7f, h[offset + 1], h[offset + 2], h[offset + 3]]);
    let code = bin % 10u32.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// RFC 4648 base32 (upper case, no padding) to bytes.
fn base32_decode(s: &str) -> Result<Vec<u8>, TotpSecretError> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u64, 0u32);
    for (i, c) in s.chars().enumerate() {
        let v = match c {
            'A'..='Z' => c as u64 - 'A' as u64,
            '2'..='7' => c as u64 - '2' as u64 + 26,
            _ => return Err(TotpSecretError::NotBase32 { position: i + 1 }),
        };
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// RFC 6238 Appendix B, SHA-1 column (8 digits), key "12345678901234567890".
    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        let key = b"12345678901234567890";
        let vectors: [(i64, &str); 6] = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (t, expected) in vectors {
            let counter = (t / STEP_SECS) as u64;
            assert_eq!(hotp(key, counter, 8), expected, "T = {t}");
            // The 6-digit code is the last six digits of the same truncation.
            assert_eq!(hotp(key, counter, 6), expected[2..], "T = {t}, 6 digits");
        }
    }

    #[test]
    fn code_at_matches_vector_and_counts_seconds_left() {
        let s = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        let at = Utc.timestamp_opt(59, 0).single().expect("valid");
        assert_eq!(s.code_at(at), Code { digits: "287082".into(), secs_left: 1 });
    }

    #[test]
    fn near_the_window_edge_the_next_code_is_used() {
        let s = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        let edge = Utc.timestamp_opt(59, 0).single().expect("valid");
        let next_window = Utc.timestamp_opt(60, 0).single().expect("valid");
        let submitted = s.code_for_submission(edge);
        assert_eq!(submitted.digits, s.code_at(next_window).digits);
        assert_eq!(submitted.secs_left, 31);
        let calm = Utc.timestamp_opt(45, 0).single().expect("valid");
        assert_eq!(s.code_for_submission(calm), s.code_at(calm));
    }

    #[test]
    fn secrets_are_normalised_and_bad_ones_named() {
        // "12345678901234567890" in base32, written the way apps show it.
        let pretty = "gezd gnbv gy3t qojq gezd gnbv gy3t qojq";
        let s = TotpSecret::parse(pretty).expect("parses");
        let at = Utc.timestamp_opt(1_111_111_109, 0).single().expect("valid");
        assert_eq!(s.code_at(at).digits, "081804");
        assert!(matches!(TotpSecret::parse("  "), Err(TotpSecretError::Empty)));
        assert!(matches!(TotpSecret::parse("ABCD1EFG"), Err(TotpSecretError::NotBase32 { position: 5 })));
        assert!(matches!(TotpSecret::parse("ABCDEFGH"), Err(TotpSecretError::TooShort { bytes: 5 })));
    }

    #[test]
    fn debug_does_not_leak_the_secret() {
        let s = TotpSecret::parse("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").expect("parses");
        assert_eq!(format!("{s:?}"), "TotpSecret([redacted])");
    }
}
