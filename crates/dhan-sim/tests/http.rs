//! The simulator over real HTTP: admin API, login redirect, wire details clients depend on.

use dhan_sim::{DhanSim, SimConfig};
use serde_json::{Value, json};

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

async fn mint(sim: &DhanSim, c: &reqwest::Client) -> Value {
    let code: Value =
        c.get(format!("{}/__sim/totp", sim.url())).send().await.expect("totp").json().await.expect("json");
    let url = format!(
        "{}/app/generateAccessToken?dhanClientId=1000000001&pin=123456&totp={}",
        sim.url(),
        code["code"].as_str().expect("code")
    );
    c.post(url).send().await.expect("mint").json().await.expect("json")
}

#[tokio::test]
async fn the_admin_api_injects_faults_and_reports_counters() {
    let sim = DhanSim::start(SimConfig::default()).await.expect("starts");
    let c = http();
    let token = mint(&sim, &c).await["accessToken"].as_str().expect("token").to_string();
    let r = c
        .post(format!("{}/__sim/faults", sim.url()))
        .json(&json!({"route": "fundlimit", "fault": "status", "status": 500, "count": 2}))
        .send()
        .await
        .expect("inject");
    assert_eq!(r.status(), 200);
    for _ in 0..2 {
        let r = c.get(format!("{}/v2/fundlimit", sim.url())).header("access-token", &token).send().await.expect("call");
        assert_eq!(r.status(), 500);
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["errorCode"], "DH-908");
    }
    let r = c.get(format!("{}/v2/fundlimit", sim.url())).header("access-token", &token).send().await.expect("call");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["availabelBalance"], 98440.0, "Dhan's spelling on the wire");
    let state: Value =
        c.get(format!("{}/__sim/state", sim.url())).send().await.expect("state").json().await.expect("json");
    assert_eq!(state["calls"]["fundlimit"], 3);
    assert_eq!(state["mints"], 1);

    c.put(format!("{}/__sim/account", sim.url()))
        .json(&json!({"holdings": [], "positions": []}))
        .send()
        .await
        .expect("set account");
    let r = c.get(format!("{}/v2/holdings", sim.url())).header("access-token", &token).send().await.expect("call");
    assert_eq!(r.status(), 500);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["errorCode"], "DH-1111");
    c.post(format!("{}/__sim/mint-elsewhere", sim.url())).send().await.expect("revoke");
    let r = c.get(format!("{}/v2/profile", sim.url())).header("access-token", &token).send().await.expect("call");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["errorMessage"], "Invalid Token");
}

#[tokio::test]
async fn consent_login_redirects_with_a_token_id_and_unknown_paths_404() {
    let sim = DhanSim::start(SimConfig::default()).await.expect("starts");
    let c = http();
    let consent: Value = c
        .post(format!("{}/app/generate-consent?client_id=1000000001", sim.url()))
        .header("app_id", "sim-api-key")
        .header("app_secret", "sim-api-secret")
        .send()
        .await
        .expect("consent")
        .json()
        .await
        .expect("json");
    let id = consent["consentAppId"].as_str().expect("id");
    let r = c.get(format!("{}/login/consentApp-login?consentAppId={id}", sim.url())).send().await.expect("login");
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().expect("ascii");
    assert!(location.starts_with("http://127.0.0.1/dhan-callback/?tokenId="), "{location}");
    let r = c.get(format!("{}/v2/nothing", sim.url())).send().await.expect("404");
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("date"), "every reply carries a Date header");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["path"], "/v2/nothing");
}

#[tokio::test]
async fn a_missing_user_agent_can_be_refused_like_cloudfront() {
    let sim = DhanSim::start(SimConfig { require_user_agent: true, ..SimConfig::default() }).await.expect("starts");
    let r = http().post(format!("{}/app/generateAccessToken", sim.url())).send().await.expect("call");
    assert_eq!(r.status(), 403);
    let r = http()
        .post(format!("{}/app/generateAccessToken", sim.url()))
        .header("user-agent", "Mozilla/5.0")
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 400, "missing params, but past the WAF");
}
