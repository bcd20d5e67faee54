//! What can go wrong talking to Dhan, typed where callers branch.
//!
//! Dhan has no single error envelope: the auth host answers rejections with HTTP 200 and
//! `{"status":"error","message":...}`, the api host uses `{"errorType","errorCode","errorMessage"}`
//! with a real status, and an empty portfolio is an HTTP 500. [`classify_api_error`] and
//! [`classify_mint_message`] turn those into one vocabulary. No variant ever holds a URL (the mint
//! URL carries the PIN and TOTP in its query) or a token.

use std::time::Duration;

/// A failed Dhan call.
#[derive(Debug, thiserror::Error)]
pub enum DhanError {
    /// The access token is dead: expired, superseded by a newer one, or garbage (401, DH-901,
    /// DH-906 "Invalid Token", data codes 807–810).
    #[error("Dhan rejected the access token ({message}); it is expired or was replaced by a newer token")]
    AuthFailed {
        /// Dhan's words.
        message: String,
    },
    /// 429 / DH-904: too many requests.
    #[error("Dhan rate limit hit ({message}); slow down and retry")]
    RateLimited {
        /// Dhan's words.
        message: String,
    },
    /// `generateAccessToken` allows one token every 2 minutes.
    #[error("Dhan allows one new token every 2 minutes; try again in {}s", retry_after.as_secs())]
    MintCooldown {
        /// How long to wait, at most.
        retry_after: Duration,
    },
    /// The TOTP code was refused (wrong window, clock skew, or the wrong secret).
    #[error(
        "Dhan refused the TOTP code (\"Invalid TOTP\"); check that this machine's clock is right (dhan-keeper check) \
         and that totp_secret is the one set up on Dhan Web"
    )]
    InvalidTotp,
    /// Client id, PIN, API key or secret refused; retrying will not help.
    #[error("Dhan refused the credentials ({message}); check client_id and pin (or api_key and api_secret)")]
    BadCredentials {
        /// Dhan's words.
        message: String,
    },
    /// A consent `tokenId` that is unknown, already used or expired.
    #[error("Dhan refused the tokenId ({message}); it was already used or has expired; log in again for a new one")]
    InvalidTokenId {
        /// Dhan's words.
        message: String,
    },
    /// RenewToken refused for this kind of token (Dhan documents it for Dhan-Web tokens only).
    #[error("Dhan would not renew this token ({message}); a new one has to be generated")]
    RenewRefused {
        /// Dhan's words.
        message: String,
    },
    /// Any other rejection from the auth host (HTTP 200 + `status: error`).
    #[error("Dhan refused the request: {message}")]
    Rejected {
        /// Dhan's words.
        message: String,
    },
    /// 5xx from Dhan.
    #[error("Dhan is having trouble (HTTP {status}{}); will retry", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Upstream {
        /// HTTP status.
        status: u16,
        /// Dhan's words, if any.
        message: String,
    },
    /// Any other HTTP error.
    #[error("Dhan answered HTTP {status} {code}: {message}{}", super::codes::explain(code).map(|e| format!(" ({e})")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// `errorCode`, e.g. DH-905.
        code: String,
        /// `errorMessage`.
        message: String,
    },
    /// No answer within the client timeout.
    #[error("Dhan did not answer {what} within {}", humantime::format_duration(*timeout))]
    Timeout {
        /// Which call.
        what: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// Could not connect, or the connection broke.
    #[error("cannot reach Dhan for {what}: {detail}")]
    Unreachable {
        /// Which call.
        what: &'static str,
        /// The transport error, without its URL.
        detail: String,
    },
    /// The body was not what Dhan documents.
    #[error("Dhan sent an unexpected reply to {what}: {detail}")]
    Malformed {
        /// Which call.
        what: &'static str,
        /// What was wrong (never the body's token).
        detail: String,
    },
}

impl DhanError {
    /// Whether retrying later may succeed (outages, rate limits, timeouts, cooldowns, TOTP windows).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::MintCooldown { .. }
                | Self::InvalidTotp
                | Self::Upstream { .. }
                | Self::Timeout { .. }
                | Self::Unreachable { .. }
                | Self::Malformed { .. }
                | Self::Rejected { .. }
        )
    }

    /// A short reason label for metrics and logs: `auth`, `rate_limited`, `cooldown`, ...
    pub fn reason(&self) -> &'static str {
        match self {
            Self::AuthFailed { .. } => "auth",
            Self::RateLimited { .. } => "rate_limited",
            Self::MintCooldown { .. } => "cooldown",
            Self::InvalidTotp => "invalid_totp",
            Self::BadCredentials { .. } => "bad_credentials",
            Self::InvalidTokenId { .. } => "invalid_token_id",
            Self::RenewRefused { .. } => "renew_refused",
            Self::Rejected { .. } => "rejected",
            Self::Upstream { .. } => "upstream",
            Self::Api { .. } => "api",
            Self::Timeout { .. } => "timeout",
            Self::Unreachable { .. } => "unreachable",
            Self::Malformed { .. } => "malformed",
        }
    }
}

/// What an api-host error means. `Ok(())` marks DH-1111 ("No holdings available"), which is not
/// an error at all. The body is parsed once; it may be any of Dhan's shapes, or not JSON.
pub(crate) fn classify_api_error(status: u16, body: &[u8]) -> Result<(), DhanError> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |key: &str| v.get(key).and_then(serde_json::Value::as_str).unwrap_or_default();
    let code = field("errorCode");
    // Auth-host shapes carry `message`; data APIs use {"data":{"807":"..."}}.
    let message = clip(if field("errorMessage").is_empty() { field("message") } else { field("errorMessage") });
    let data_code = v.get("data").and_then(|d| d.as_object()?.keys().next().cloned()).unwrap_or_default();
    if code == "DH-1111" {
        return Ok(());
    }
    if status == 401
        || code == "DH-901"
        || (code == "DH-906" && message.to_ascii_lowercase().contains("invalid token"))
        || matches!(data_code.as_str(), "807" | "808" | "809" | "810")
    {
        return Err(DhanError::AuthFailed { message: fallback(message, "invalid or expired token") });
    }
    if status == 429 || code == "DH-904" || data_code == "805" {
        return Err(DhanError::RateLimited { message: fallback(message, "too many requests") });
    }
    if status >= 500 {
        return Err(DhanError::Upstream { status, message });
    }
    Err(DhanError::Api { status, code: fallback(code.to_string(), "-"), message: fallback(message, "no details") })
}

/// The `errorCode` of an api-host error body, if it has one.
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("errorCode").and_then(serde_json::Value::as_str).map(str::to_string)
}

/// [`classify_api_error`] for routes where DH-1111 means nothing: it is reported as upstream trouble.
pub(crate) fn api_error(status: u16, body: &[u8]) -> DhanError {
    classify_api_error(status, body)
        .err()
        .unwrap_or_else(|| DhanError::Upstream { status, message: "No holdings available".into() })
}

/// What a `{"status":"error","message":...}` from the auth host's mint route means.
pub(crate) fn classify_mint_message(message: &str) -> DhanError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("totp") && (lower.contains("invalid") || lower.contains("incorrect") || lower.contains("wrong")) {
        DhanError::InvalidTotp
    } else if lower.contains("2 minutes") || lower.contains("once every") || lower.contains("two minutes") {
        DhanError::MintCooldown { retry_after: Duration::from_secs(120) }
    } else if lower.contains("credential")
        || lower.contains("pin")
        || lower.contains("login failed")
        || lower.contains("client")
        || lower.contains("not enabled")
        || lower.contains("unauthori")
    {
        DhanError::BadCredentials { message: clip(message) }
    } else {
        DhanError::Rejected { message: fallback(clip(message), "no reason given") }
    }
}

fn fallback(s: String, default: &str) -> String {
    if s.trim().is_empty() { default.to_string() } else { s }
}

/// Keeps server-supplied text short and on one line, so a hostile body cannot flood a message.
pub(crate) fn clip(s: &str) -> String {
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let trimmed = one_line.trim();
    match trimmed.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &trimmed[..i]),
        None => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_are_classified_as_the_reference_says() {
        let dh901 = br#"{"errorType":"Invalid_Authentication","errorCode":"DH-901","errorMessage":"Client ID or user generated access token is invalid or expired."}"#;
        assert!(matches!(classify_api_error(401, dh901), Err(DhanError::AuthFailed { .. })));
        let dh906 = br#"{"errorType":"Order_Error","errorCode":"DH-906","errorMessage":"Invalid Token"}"#;
        assert!(matches!(classify_api_error(400, dh906), Err(DhanError::AuthFailed { .. })));
        let dh906_other = br#"{"errorType":"Order_Error","errorCode":"DH-906","errorMessage":"Market is Closed!"}"#;
        assert!(matches!(classify_api_error(400, dh906_other), Err(DhanError::Api { .. })));
        let dh904 = br#"{"errorType":"Rate_Limit","errorCode":"DH-904","errorMessage":"Too many requests"}"#;
        assert!(matches!(classify_api_error(429, dh904), Err(DhanError::RateLimited { .. })));
        let dh1111 = br#"{"errorType":"HOLDING_ERROR","errorCode":"DH-1111","errorMessage":"No holdings available"}"#;
        assert!(classify_api_error(500, dh1111).is_ok());
        assert!(matches!(
            classify_api_error(502, b"<html>bad gateway</html>"),
            Err(DhanError::Upstream { status: 502, .. })
        ));
        assert!(matches!(
            classify_api_error(400, br#"{"data":{"808":"Authentication Failed"}}"#),
            Err(DhanError::AuthFailed { .. })
        ));
        assert!(matches!(
            classify_api_error(400, br#"{"data":{"805":"Too many"}}"#),
            Err(DhanError::RateLimited { .. })
        ));
    }

    #[test]
    fn mint_messages_are_classified() {
        assert!(matches!(classify_mint_message("Invalid TOTP"), DhanError::InvalidTotp));
        assert!(matches!(
            classify_mint_message("Token can be generated once every 2 minutes."),
            DhanError::MintCooldown { .. }
        ));
        assert!(matches!(
            classify_mint_message("Login failed. Please retry with valid credentials."),
            DhanError::BadCredentials { .. }
        ));
        assert!(matches!(classify_mint_message("Something odd"), DhanError::Rejected { .. }));
    }

    #[test]
    fn server_text_is_clipped_to_one_short_line() {
        let long = "x".repeat(1000) + "\n\u{0}";
        let c = clip(&long);
        assert!(c.chars().count() <= 201);
        assert!(!c.contains('\n'));
    }
}
