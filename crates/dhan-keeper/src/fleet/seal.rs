//! Sealing the token before it goes to Redis, so Redis never holds a usable token.
//!
//! A leaked dump, a replica on a shared box or a misconfigured ACL then leaks nothing: the
//! record holds XChaCha20-Poly1305 ciphertext under `fleet_key`, which only the keepers have.
//! The 24-byte nonce is random per seal (safe at any volume with the extended nonce). The
//! associated data binds the ciphertext to its client id, record epoch and generation, so a blob
//! copied to another client or replayed as a later generation does not open.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::secret::Secret;

const NONCE_LEN: usize = 24;

/// `fleet_key`: 32 bytes every keeper of a fleet shares. Prints as `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct FleetKey([u8; 32]);

impl FleetKey {
    /// 64 hex characters, or base64 (standard or URL-safe, padded or not) of 32 bytes. The error
    /// never quotes the value.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let hint = "must be 32 random bytes written as 64 hex characters (generate one with `openssl rand -hex 32`) \
                    or as base64 (`openssl rand -base64 32`)";
        let bytes = if raw.len() == 64 && raw.chars().all(|c| c.is_ascii_hexdigit()) {
            (0..32).map(|i| u8::from_str_radix(&raw[2 * i..2 * i + 2], 16)).collect::<Result<Vec<u8>, _>>().ok()
        } else {
            [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD].iter().find_map(|e| e.decode(raw).ok())
        };
        let Some(bytes) = bytes else {
            return Err(format!("is neither hex nor base64 ({} characters); it {hint}", raw.len()));
        };
        let key: [u8; 32] =
            bytes.as_slice().try_into().map_err(|_| format!("decodes to {} bytes, not 32; it {hint}", bytes.len()))?;
        if key.iter().all(|b| *b == key[0]) {
            return Err(format!("is one byte repeated, not a random key; it {hint}"));
        }
        Ok(Self(key))
    }

    /// The ways this key may have been written in a config (hex, base64 variants): text that
    /// must never be repeated, for the output scrubbers.
    pub(crate) fn text_forms(&self) -> Vec<String> {
        let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        let mut forms = vec![hex.to_ascii_uppercase(), hex];
        forms.extend([STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD].iter().map(|e| e.encode(self.0)));
        forms.dedup();
        forms
    }

    /// Seals `token` for (`client_id`, `epoch`, `generation`): base64 of nonce ‖ ciphertext.
    pub(crate) fn seal(&self, token: &Secret, client_id: &str, epoch: &str, generation: u64) -> Result<String, String> {
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        let nonce = XNonce::generate();
        let aad = associated_data(client_id, epoch, generation);
        let sealed = cipher
            .encrypt(&nonce, Payload { msg: token.expose().as_bytes(), aad: &aad })
            .map_err(|_| "the token could not be sealed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    /// Opens what [`FleetKey::seal`] made for the same (`client_id`, `epoch`, `generation`).
    pub(crate) fn open(&self, sealed: &str, client_id: &str, epoch: &str, generation: u64) -> Result<Secret, String> {
        let bytes = STANDARD.decode(sealed).map_err(|_| "the sealed token is not base64".to_string())?;
        if bytes.len() <= NONCE_LEN {
            return Err("the sealed token is too short".into());
        }
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| "the sealed token has a bad nonce".to_string())?;
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        let aad = associated_data(client_id, epoch, generation);
        let plain = cipher.decrypt(&nonce, Payload { msg: body, aad: &aad }).map_err(|_| {
            "the shared token does not open with this `fleet_key` (a different key on the publishing keeper, or a \
             record altered in Redis)"
                .to_string()
        })?;
        String::from_utf8(plain).map(Secret::new).map_err(|_| "the opened token is not text".to_string())
    }
}

fn associated_data(client_id: &str, epoch: &str, generation: u64) -> Vec<u8> {
    format!("dhan-keeper/fleet/v1\0{client_id}\0{epoch}\0{generation}").into_bytes()
}

impl fmt::Debug for FleetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn keys_parse_from_hex_or_base64_and_bad_ones_say_how_to_make_one() {
        let k = FleetKey::parse(HEX).expect("hex");
        let b64 = STANDARD.encode(k.0);
        assert_eq!(FleetKey::parse(&b64).expect("base64"), k);
        assert_eq!(FleetKey::parse(&URL_SAFE_NO_PAD.encode(k.0)).expect("url-safe"), k);
        let table = ["short", &HEX[..62], &STANDARD.encode([7u8; 16]), &"00".repeat(32), "zz!!"];
        for bad in table {
            let e = FleetKey::parse(bad).expect_err(bad);
            assert!(e.contains("openssl rand"), "{e}");
            assert!(bad.len() < 8 || !e.contains(bad), "echoed: {e}");
        }
        assert_eq!(format!("{k:?}"), "[redacted]");
        assert!(k.text_forms().contains(&HEX.to_string()) && k.text_forms().contains(&b64));
    }

    #[test]
    fn a_sealed_token_opens_only_for_its_client_epoch_generation_and_key() {
        let key = FleetKey::parse(HEX).expect("key");
        let token = Secret::new("eyJhbGciOi.the-token.sig");
        let sealed = key.seal(&token, "1000000001", "ep1", 7).expect("seal");
        assert!(!sealed.contains("the-token"));
        assert_eq!(key.open(&sealed, "1000000001", "ep1", 7).expect("open"), token);
        assert!(key.open(&sealed, "1000000002", "ep1", 7).is_err(), "another client");
        assert!(key.open(&sealed, "1000000001", "ep2", 7).is_err(), "another epoch");
        assert!(key.open(&sealed, "1000000001", "ep1", 8).is_err(), "replayed as a later generation");
        let other = FleetKey::parse(&HEX.replace('0', "1")).expect("key");
        assert!(other.open(&sealed, "1000000001", "ep1", 7).expect_err("other key").contains("fleet_key"));
        let again = key.seal(&token, "1000000001", "ep1", 7).expect("seal");
        assert_ne!(sealed, again, "a fresh nonce every time");
        assert!(key.open("!!", "1000000001", "ep1", 7).is_err());
        assert!(key.open(&STANDARD.encode([1u8; 10]), "1000000001", "ep1", 7).is_err());
    }
}
