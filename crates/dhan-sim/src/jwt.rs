//! JWT-shaped access tokens with Dhan's claims (`iss`, `exp`, `iat`, `tokenConsumerType`,
//! `dhanClientId`, ...). The signature part is random bytes: the simulator recognises its tokens
//! by exact string, and the random part makes two tokens minted in the same second differ.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

/// Builds a token string.
pub fn make(client_id: &str, iat: i64, exp: i64, consumer_type: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"HS512"}"#);
    let claims = json!({
        "iss": "dhan",
        "partnerId": "",
        "exp": exp,
        "iat": iat,
        "tokenConsumerType": consumer_type,
        "webhookUrl": "",
        "dhanClientId": client_id,
        "userRegion": "IN",
    });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let sig: Vec<u8> = (0..64).map(|_| fastrand::u8(..)).collect();
    format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// A random UUID-shaped id (consent ids, token ids).
pub fn uuid() -> String {
    let b: Vec<u8> = (0..16).map(|_| fastrand::u8(..)).collect();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}
