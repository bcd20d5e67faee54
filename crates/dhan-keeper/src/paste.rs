//! What a plain message from the admin chat might be: the consent callback URL, a bare tokenId,
//! or an access token. Pure classification; acting on it is the bot's job.

use url::Url;

use crate::secret::Secret;

/// A pasted message, classified.
#[derive(Debug, PartialEq)]
pub enum Paste {
    /// A tokenId, from a callback URL or bare.
    TokenId(String),
    /// A JWT access token (validated with Dhan before it is stored).
    AccessToken(Secret),
    /// A URL, but without a tokenId in it.
    UrlWithoutTokenId,
    /// None of the above.
    Unrecognised,
}

const TOKEN_ID_KEYS: [&str; 3] = ["tokenId", "token_id", "tokenid"];

/// Classifies `text`, tried in order as: URL with a tokenId, bare tokenId, access token.
pub fn classify(text: &str) -> Paste {
    let t = text.trim().trim_matches(|c| c == '<' || c == '>' || c == '"' || c == '\'');
    if t.starts_with("http://") || t.starts_with("https://") {
        let Ok(url) = Url::parse(t) else {
            return Paste::UrlWithoutTokenId;
        };
        let found = url
            .query_pairs()
            .find(|(k, v)| TOKEN_ID_KEYS.iter().any(|key| k.eq_ignore_ascii_case(key)) && looks_like_token_id(v));
        return match found {
            Some((_, v)) => Paste::TokenId(v.into_owned()),
            None => Paste::UrlWithoutTokenId,
        };
    }
    if crate::dhan::jwt::looks_like_jwt(t) {
        return Paste::AccessToken(Secret::new(t));
    }
    if looks_like_token_id(t) {
        return Paste::TokenId(t.to_string());
    }
    Paste::Unrecognised
}

/// Dhan's tokenIds are UUID-like: 16–128 of `[A-Za-z0-9_-]` with at least one digit, so an
/// ordinary word is not sent to Dhan as one.
fn looks_like_token_id(s: &str) -> bool {
    (16..=128).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && s.chars().any(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6f1c2a9e-0b7d-4c1e-9a55-3d2f7c8b9e10";

    #[test]
    fn callback_urls_in_every_spelling() {
        for key in ["tokenId", "token_id", "tokenid", "TOKENID"] {
            let url = format!("https://example.com/dhan/callback/?state=x&{key}={ID}");
            assert_eq!(classify(&url), Paste::TokenId(ID.into()), "{key}");
        }
        assert_eq!(classify(&format!("  <https://example.com/?tokenId={ID}>  ")), Paste::TokenId(ID.into()));
        assert_eq!(classify("https://example.com/?code=abc"), Paste::UrlWithoutTokenId);
        assert_eq!(classify("https://example.com/?tokenId=short"), Paste::UrlWithoutTokenId);
    }

    #[test]
    fn bare_ids_tokens_and_chatter() {
        assert_eq!(classify(ID), Paste::TokenId(ID.into()));
        let jwt = "eyJhbGciOiJIUzUxMiJ9.eyJleHAiOjE3NjQ2MzE4MDB9.c2lnbmF0dXJl";
        assert!(matches!(classify(jwt), Paste::AccessToken(_)));
        assert_eq!(classify("hello there"), Paste::Unrecognised);
        assert_eq!(classify("passwordpassword"), Paste::Unrecognised, "no digit: a word, not an id");
        assert_eq!(classify(""), Paste::Unrecognised);
    }
}
