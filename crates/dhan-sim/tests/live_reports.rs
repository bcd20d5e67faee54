//! The simulator's defaults follow the live reports of Sep–Oct 2026 (reference §8b), over real
//! HTTP; the first edition's guesses stay available as knobs.

use std::time::Duration;

use base64::Engine;
use dhan_sim::{Account, DhanSim, Fault, MintCheck, RenewApp, SimConfig, StaticIp, Superseded, TokenRejection};
use serde_json::{Value, json};

fn http() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

fn mint_url(sim: &DhanSim, pin: &str) -> String {
    let code = sim.totp_now().expect("totp").0;
    format!("{}/app/generateAccessToken?dhanClientId=1000000001&pin={pin}&totp={code}", sim.url())
}

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

async fn mint(sim: &DhanSim) -> String {
    let (_, body) = json_of(http().post(mint_url(sim, "123456")).send().await.expect("mint")).await;
    body["accessToken"].as_str().expect("a token").to_string()
}

async fn get(sim: &DhanSim, path: &str, token: &str) -> (u16, Value) {
    json_of(http().get(format!("{}{path}", sim.url())).header("access-token", token).send().await.expect("get")).await
}

#[tokio::test]
async fn renew_token_refuses_app_tokens_with_http_500_dh905() {
    let sim = DhanSim::start(SimConfig::default()).await.expect("starts");
    let token = mint(&sim).await;
    let renew = |t: String| {
        http()
            .get(format!("{}/v2/RenewToken", sim.url()))
            .header("access-token", t)
            .header("dhanClientId", "1000000001")
            .send()
    };
    let (status, body) = json_of(renew(token.clone()).await.expect("renew")).await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        json!({"errorType":"INVALID_REQUEST","errorCode":"DH-905","errorMessage":"Renewal of token not allowed for this token type"})
    );
    sim.update_config(|c| c.renew_app = RenewApp::Dh905);
    let (status, _) = json_of(renew(token.clone()).await.expect("renew")).await;
    assert_eq!(status, 400, "the first edition's guess stays a knob");
    // A Dhan Web (SELF) token renews.
    sim.mint_elsewhere();
    let web = sim.active_token().expect("web token");
    let (status, body) = json_of(renew(web).await.expect("renew")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_refusal_inside_the_window_restarts_it() {
    // Virtual time through the simulator's clock offset: Dhan's real 120 s window, no waiting.
    let sim = DhanSim::start(SimConfig::default()).await.expect("starts");
    mint(&sim).await;
    sim.set_clock_offset(chrono::Duration::seconds(90));
    let (_, refused) = json_of(http().post(mint_url(&sim, "123456")).send().await.expect("mint")).await;
    assert_eq!(refused["message"], "Token can be generated once every 2 minutes.");
    // 150 s after the mint (past its window) but 60 s after the refusal: still refused.
    sim.set_clock_offset(chrono::Duration::seconds(150));
    let (_, again) = json_of(http().post(mint_url(&sim, "123456")).send().await.expect("mint")).await;
    assert_eq!(again["message"], "Token can be generated once every 2 minutes.", "the refusal re-armed it");
    // The first edition's model: only successful mints start the window.
    sim.update_config(|c| c.cooldown_rearms = false);
    sim.set_clock_offset(chrono::Duration::seconds(280));
    mint(&sim).await;
    sim.set_clock_offset(chrono::Duration::seconds(350));
    let _ = http().post(mint_url(&sim, "123456")).send().await.expect("refused");
    sim.set_clock_offset(chrono::Duration::seconds(410));
    mint(&sim).await;
    assert_eq!(sim.mints(), 3);
}

#[tokio::test]
async fn the_mint_route_refuses_a_json_content_type_and_its_check_order_is_a_knob() {
    let sim = DhanSim::start(SimConfig::default()).await.expect("starts");
    let (status, body) = json_of(
        http().post(mint_url(&sim, "123456")).header("content-type", "application/json").send().await.expect("mint"),
    )
    .await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("DH-905")), "{body}");
    assert_eq!(sim.mints(), 0);
    mint(&sim).await;
    // Default order: the window is checked before the credentials, so a wrong PIN inside the
    // window hears only about the window...
    let (_, body) = json_of(http().post(mint_url(&sim, "000000")).send().await.expect("mint")).await;
    assert_eq!(body["message"], "Token can be generated once every 2 minutes.");
    // ...and with credentials first, about the PIN.
    sim.update_config(|c| c.mint_check_order = vec![MintCheck::Params, MintCheck::Credentials, MintCheck::Cooldown]);
    let (_, body) = json_of(http().post(mint_url(&sim, "000000")).send().await.expect("mint")).await;
    assert_eq!(body["message"], "Login failed. Please retry with valid credentials.");
}

#[tokio::test]
async fn superseded_tokens_answer_400_dh906_and_a_live_token_can_be_rejected_once() {
    let sim = DhanSim::start(SimConfig::default()).await.expect("starts");
    let token = mint(&sim).await;
    sim.inject("profile", Fault::RejectToken { code: TokenRejection::Dh901 }, 1);
    let (status, body) = get(&sim, "/v2/profile", &token).await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("DH-901")));
    let (status, _) = get(&sim, "/v2/profile", &token).await;
    assert_eq!(status, 200, "accepted again after the one-shot rejection");
    sim.inject("profile", Fault::RejectToken { code: TokenRejection::Dh906 }, 1);
    let (status, body) = get(&sim, "/v2/profile", &token).await;
    assert_eq!((status, body["errorMessage"].as_str()), (400, Some("Invalid Token")));

    sim.mint_elsewhere();
    let (status, body) = get(&sim, "/v2/profile", &token).await;
    assert_eq!(
        (status, body["errorCode"].as_str(), body["errorMessage"].as_str()),
        (400, Some("DH-906"), Some("Invalid Token"))
    );
    sim.update_config(|c| c.superseded = Superseded::Dh906Http401);
    assert_eq!(get(&sim, "/v2/profile", &token).await.0, 401);
}

#[tokio::test]
async fn live_jwts_carry_user_region_and_a_slow_empty_mint_reply_counts_as_an_attempt() {
    let sim = DhanSim::start(SimConfig { mint_cooldown: Duration::from_secs(60), ..SimConfig::default() })
        .await
        .expect("starts");
    let token = mint(&sim).await;
    let payload = token.split('.').nth(1).expect("payload");
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64"))
            .expect("json");
    for claim in ["dhanClientId", "exp", "iat", "iss", "partnerId", "tokenConsumerType", "userRegion"] {
        assert!(claims.get(claim).is_some(), "{claim} in {claims}");
    }
    sim.reset_cooldown();
    let envelope = json!({"message": "Something went wrong", "status": "error"});
    sim.inject(
        "generateAccessToken",
        Fault::SlowReply { ms: 200, status: 200, body: envelope.clone(), counts_as_mint: true },
        1,
    );
    let (status, body) = json_of(http().post(mint_url(&sim, "123456")).send().await.expect("mint")).await;
    assert_eq!((status, body), (200, envelope));
    let (_, after) = json_of(http().post(mint_url(&sim, "123456")).send().await.expect("mint")).await;
    assert_eq!(after["message"], "Token can be generated once every 2 minutes.", "it counted");
}

#[tokio::test]
async fn get_ip_reports_the_callers_address_against_the_static_ips() {
    let sim = DhanSim::start(SimConfig::default()).await.expect("starts");
    let token = mint(&sim).await;
    let (status, body) = get(&sim, "/v2/ip/getIP", &token).await;
    assert_eq!(status, 200);
    assert_eq!(body["detectedIP"], "127.0.0.1");
    assert_eq!(body["ipMatchStatus"], "MATCH");
    assert_eq!(body["ordersAllowed"], true);
    assert_eq!(body["modifyDatePrimary"], "2026-04-01");
    sim.set_account(Account {
        static_ip: StaticIp { primary_ip: "203.0.113.7".into(), ..StaticIp::default() },
        ..Account::default()
    });
    let (_, body) = get(&sim, "/v2/ip/getIP", &token).await;
    assert_eq!((body["ipMatchStatus"].as_str(), body["ordersAllowed"].as_bool()), (Some("MISMATCH"), Some(false)));
    sim.set_account(Account {
        static_ip: StaticIp { primary_ip: String::new(), ..StaticIp::default() },
        ..Account::default()
    });
    let (status, body) = get(&sim, "/v2/ip/getIP", &token).await;
    assert_eq!(status, 200, "Dhan's error form is HTTP 200");
    assert_eq!(body, json!([{"message": "Static IP is not configured for this client", "status": "ERROR"}]));
    assert_eq!(get(&sim, "/v2/ip/getIP", "garbage").await.0, 401);
}
