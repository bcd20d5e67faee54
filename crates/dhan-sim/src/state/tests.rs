//! Tests for the parent module.

use super::*;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T03:00:00Z").map(|t| t.with_timezone(&Utc)).unwrap_or_default()
}

#[test]
fn a_new_token_supersedes_the_old_and_the_cooldown_holds() {
    let mut s = SimState::new(SimConfig { mint_cooldown: std::time::Duration::from_secs(120), ..SimConfig::default() });
    let (code, _) = s.totp_now(now()).unwrap_or_default();
    let (status, body) = s.generate_access_token(Some("1000000001"), Some("123456"), Some(&code), false, now());
    assert_eq!(status, 200);
    let first = body["accessToken"].as_str().unwrap_or_default().to_string();
    assert_eq!(body["expiryTime"], "2026-11-26T08:30:00.000");
    let (_, again) =
        s.generate_access_token(Some("1000000001"), Some("123456"), Some(&code), false, now() + Duration::seconds(60));
    assert_eq!(again["message"], "Token can be generated once every 2 minutes.");
    // The refusal at +60 s restarted the window: +150 s is still inside it.
    let (_, late) =
        s.generate_access_token(Some("1000000001"), Some("123456"), Some(&code), false, now() + Duration::seconds(150));
    assert_eq!(late["message"], "Token can be generated once every 2 minutes.");
    s.mint_elsewhere(now());
    assert_eq!(s.check_token(Some(&first), now()).err(), Some(TokenCheck::Superseded));
}
