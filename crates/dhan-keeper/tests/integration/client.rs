//! The Dhan client against the simulator: every route, every error class, over real HTTP.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use dhan_keeper::clock::{Clock, ManualClock, SystemClock};
use dhan_keeper::dhan::{DhanClient, DhanError, jwt};
use dhan_keeper::mint::mint_with_totp;
use dhan_keeper::secret::Secret;
use dhan_keeper::totp::TotpSecret;
use dhan_sim::{Account, Fault, RenewApp};
use serde_json::json;

use crate::helpers::*;

fn pin() -> Secret {
    Secret::new(PIN)
}

fn totp() -> TotpSecret {
    TotpSecret::parse(TOTP_SECRET).expect("valid secret")
}

async fn mint(sim: &dhan_sim::DhanSim) -> dhan_keeper::dhan::Minted {
    mint_with_totp(&client(sim), &pin(), &totp(), &SystemClock, || async { true }).await.expect("mint succeeds")
}

/// A simulator, a client for it, and a freshly minted token.
async fn with_token() -> (dhan_sim::DhanSim, DhanClient, Secret) {
    let sim = sim().await;
    let c = client(&sim);
    let t = mint(&sim).await.access_token;
    (sim, c, t)
}

#[tokio::test]
async fn a_totp_mint_returns_a_token_whose_expiry_matches_the_jwt_in_ist() {
    let sim = sim().await;
    let m = mint(&sim).await;
    assert_eq!(Some(m.access_token.expose().to_string()), sim.active_token());
    assert_eq!(m.client_id.as_deref(), Some("1000000001"));
    assert_eq!(m.expires_at.offset().local_minus_utc(), 19_800, "stored with the IST offset");
    let claims = jwt::decode(m.access_token.expose()).expect("JWT");
    assert_eq!(claims.token_consumer_type.as_deref(), Some("APP"));
    // expiryTime has millisecond precision, exp whole seconds: they agree to the second.
    assert_eq!(m.expires_at.timestamp(), claims.exp.expect("exp"));
    let left = m.expires_at.with_timezone(&Utc) - SystemClock.now();
    assert!(left > chrono::Duration::hours(23) && left <= chrono::Duration::hours(24), "{left}");
}

#[tokio::test]
async fn mint_rejections_arrive_as_http_200_and_are_classified() {
    let sim = sim().await;
    let c = client(&sim);
    let e = c.generate_access_token(&pin(), "000000").await.expect_err("wrong code");
    assert!(matches!(e, DhanError::InvalidTotp), "{e:?}");
    let code = totp().code_for_submission(SystemClock.now()).digits;
    let e = c.generate_access_token(&Secret::new("111111"), &code).await.expect_err("wrong pin");
    assert!(matches!(e, DhanError::BadCredentials { .. }), "{e:?}");
    assert!(!e.is_transient());
    assert!(!format!("{e} {e:?}").contains("111111"), "the PIN sent is not echoed: {e}");
    mint(&sim).await;
    let code = totp().code_for_submission(SystemClock.now()).digits;
    let e = c.generate_access_token(&pin(), &code).await.expect_err("cooldown");
    assert!(matches!(e, DhanError::MintCooldown { retry_after } if retry_after == Duration::from_secs(120)), "{e:?}");
    assert_eq!(sim.mints(), 1);
}

#[tokio::test]
async fn invalid_totp_is_retried_once_at_a_window_edge_then_given_up() {
    let sim = sim().await;
    // A manual clock 1 s before a window ends: the next window's code must be sent. The
    // simulator's clock is moved to agree with it.
    let real = SystemClock.now();
    let edge = Utc.timestamp_opt((real.timestamp() / 30 + 1) * 30 - 1, 0).single().expect("valid");
    sim.set_clock_offset(edge - real);
    let clock = ManualClock::new(edge);
    sim.inject(
        "generateAccessToken",
        Fault::Json { status: 200, body: json!({"message": "Invalid TOTP", "status": "error"}) },
        1,
    );
    let m =
        mint_with_totp(&client(&sim), &pin(), &totp(), &clock, || async { true }).await.expect("second try succeeds");
    assert_eq!(Some(m.access_token.expose().to_string()), sim.active_token());
    assert_eq!(sim.calls("generateAccessToken"), 2);

    sim.reset_cooldown();
    sim.inject(
        "generateAccessToken",
        Fault::Json { status: 200, body: json!({"message": "Invalid TOTP", "status": "error"}) },
        2,
    );
    let e = mint_with_totp(&client(&sim), &pin(), &totp(), &clock, || async { true }).await.expect_err("gives up");
    assert!(matches!(e, DhanError::InvalidTotp));
    assert_eq!(sim.calls("generateAccessToken"), 4, "exactly one retry");
}

#[tokio::test]
async fn the_consent_flow_issues_a_token_once_per_token_id() {
    let sim = sim().await;
    let c = client(&sim);
    let (key, secret) = (Secret::new(API_KEY), Secret::new(API_SECRET));
    let consent = c.generate_consent(&key, &secret).await.expect("consent");
    let login = c.consent_login_url(&consent);
    assert!(login.as_str().starts_with(&format!("{}/login/consentApp-login?consentAppId=", sim.url())), "{login}");
    let callback = sim.login(&consent.0).expect("login");
    let token_id = url::Url::parse(&callback)
        .expect("callback url")
        .query_pairs()
        .find(|(k, _)| k == "tokenId")
        .map(|(_, v)| v.into_owned())
        .expect("tokenId");
    let m = c.consume_consent(&token_id, &key, &secret).await.expect("token");
    assert_eq!(Some(m.access_token.expose().to_string()), sim.active_token());
    let e = c.consume_consent(&token_id, &key, &secret).await.expect_err("one-shot");
    assert!(matches!(e, DhanError::InvalidTokenId { .. }), "{e:?}");
    let e = c.generate_consent(&key, &Secret::new("wrong")).await.expect_err("bad secret");
    assert!(matches!(e, DhanError::BadCredentials { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains(API_SECRET));
}

#[tokio::test]
async fn renew_is_refused_for_api_tokens_by_default_and_supersedes_when_allowed() {
    let sim = sim().await;
    let c = client(&sim);
    let first = mint(&sim).await;
    let e = c.renew_token(&first.access_token).await.expect_err("APP tokens are not renewable");
    assert!(matches!(e, DhanError::RenewRefused { .. }), "{e:?}");
    sim.update_config(|cfg| cfg.renew_app = RenewApp::Succeed);
    let renewed = c.renew_token(&first.access_token).await.expect("renewed");
    assert_ne!(renewed.access_token, first.access_token);
    let e = c.profile(&first.access_token).await.expect_err("old token is dead");
    assert!(matches!(e, DhanError::AuthFailed { .. }), "{e:?}");
    c.profile(&renewed.access_token).await.expect("new token works");
}

#[tokio::test]
async fn account_routes_are_typed_including_dhans_spelling() {
    let (_sim, c, t) = with_token().await;
    let p = c.profile(&t).await.expect("profile");
    assert_eq!(p.dhan_client_id, "1000000001");
    let validity = dhan_keeper::ist::parse_token_validity(&p.token_validity).expect("DD/MM/YYYY HH:mm");
    assert!((validity.timestamp() - jwt::decode(t.expose()).and_then(|c| c.exp).expect("exp")).abs() < 60);
    let f = c.fund_limit(&t).await.expect("fundlimit");
    assert_eq!(f.available_balance, 98_440.0, "read from availabelBalance");
    assert_eq!(f.sod_limit, 113_642.0, "integers read as f64");
    let h = c.holdings(&t).await.expect("holdings");
    assert_eq!(h.len(), 3);
    assert_eq!(h[0].trading_symbol, "HDFC");
    let pos = c.positions(&t).await.expect("positions");
    assert_eq!(pos[0].unrealized_profit, 6122.0);
}

#[tokio::test]
async fn empty_holdings_http_500_dh1111_reads_as_no_holdings() {
    let sim = sim().await;
    sim.set_account(Account { holdings: vec![], positions: vec![], ..Account::default() });
    let c = client(&sim);
    let t = mint(&sim).await.access_token;
    assert!(c.holdings(&t).await.expect("not an error").is_empty());
    assert!(c.positions(&t).await.expect("empty array").is_empty());
}

#[tokio::test]
async fn dead_tokens_fail_auth_whether_superseded_expired_or_garbage() {
    let (sim, c, t) = with_token().await;
    sim.mint_elsewhere();
    assert!(matches!(c.profile(&t).await, Err(DhanError::AuthFailed { .. })));
    assert!(matches!(c.fund_limit(&Secret::new("garbage")).await, Err(DhanError::AuthFailed { .. })));
    sim.reset_cooldown();
    let t2 = mint(&sim).await.access_token;
    sim.expire_active();
    assert!(matches!(c.holdings(&t2).await, Err(DhanError::AuthFailed { .. })));
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_transient() {
    let (sim, c, t) = with_token().await;
    sim.update_config(|cfg| cfg.rate_limit_per_sec = 2);
    let results = [c.profile(&t).await.is_ok(), c.profile(&t).await.is_ok()];
    assert_eq!(results, [true, true]);
    let e = c.profile(&t).await.expect_err("third call in a second");
    assert!(matches!(e, DhanError::RateLimited { .. }) && e.is_transient(), "{e:?}");
    sim.update_config(|cfg| cfg.rate_limit_per_sec = 1000);
    sim.inject("fundlimit", Fault::Status { status: 500 }, 1);
    sim.inject("fundlimit", Fault::Status { status: 502 }, 1);
    let e = c.fund_limit(&t).await.expect_err("500");
    assert!(matches!(e, DhanError::Upstream { status: 500, .. }) && e.is_transient(), "{e:?}");
    let e = c.fund_limit(&t).await.expect_err("502 html");
    assert!(matches!(e, DhanError::Upstream { status: 502, .. }), "{e:?}");
    sim.inject("positions", Fault::RateLimit, 1);
    assert!(matches!(c.positions(&t).await, Err(DhanError::RateLimited { .. })));
    c.fund_limit(&t).await.expect("recovers");
}

#[tokio::test]
async fn hangs_garbage_truncation_and_drops_are_reported_not_panicked() {
    let sim = sim().await;
    let c = client_with_timeout(&sim, Duration::from_millis(300));
    let t = mint(&sim).await.access_token;
    sim.inject("profile", Fault::Delay { ms: 2_000 }, 1);
    assert!(matches!(c.profile(&t).await, Err(DhanError::Timeout { .. })));
    sim.inject("profile", Fault::Garbage, 1);
    assert!(matches!(c.profile(&t).await, Err(DhanError::Malformed { .. })));
    sim.inject("profile", Fault::Drop, 1);
    let e = c.profile(&t).await.expect_err("dropped");
    assert!(matches!(e, DhanError::Unreachable { .. }), "{e:?}");
    sim.reset_cooldown();
    sim.inject("generateAccessToken", Fault::Truncated, 1);
    let code = totp().code_for_submission(SystemClock.now()).digits;
    let e = c.generate_access_token(&pin(), &code).await.expect_err("truncated");
    assert!(matches!(e, DhanError::Malformed { .. }), "{e:?}");
    assert!(!e.to_string().contains(PIN) && !e.to_string().contains(&code), "{e}");
    sim.inject("generateAccessToken", Fault::Drop, 1);
    let e = c.generate_access_token(&pin(), &code).await.expect_err("dropped");
    assert!(!format!("{e} {e:?}").contains(PIN), "transport errors must not carry the mint URL: {e:?}");
}

#[tokio::test]
async fn a_stopped_simulator_is_unreachable_and_a_restart_keeps_tokens_alive() {
    let (sim, c, t) = with_token().await;
    sim.stop();
    let e = c.profile(&t).await.expect_err("stopped");
    assert!(matches!(e, DhanError::Unreachable { .. }), "{e:?}");
    sim.restart().await.expect("restarts on the same port");
    c.profile(&t).await.expect("token survived the outage");
}

#[tokio::test]
async fn the_probe_reads_the_servers_clock() {
    let sim = sim().await;
    sim.set_clock_offset(chrono::Duration::seconds(40));
    let p = client(&sim).probe_api().await.expect("probe");
    assert_eq!(p.status, 401);
    let offset = p.server_date.expect("Date header") - SystemClock.now();
    assert!((38..=41).contains(&offset.num_seconds()), "{offset}");
}
