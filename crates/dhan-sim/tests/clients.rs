//! One simulator, several Dhan clients (a family's accounts): each client keeps its own token,
//! mint window, consents and static IP, over real HTTP.

use std::time::Duration;

use dhan_sim::{DhanSim, SimClient, SimConfig, StaticIp};
use serde_json::Value;

const MOM: &str = "1000000002";
const HUF: &str = "1000000003";

async fn family() -> DhanSim {
    let mom = SimClient {
        pin: "246810".into(),
        totp_secret: "KRUGS4ZANFZSAYJAONSWG4TFOQQHI33UOBZWKY3S".into(),
        ..SimClient::new(MOM)
    };
    let huf = SimClient {
        static_ip: StaticIp { primary_ip: "127.0.0.3".into(), ..StaticIp::default() },
        ..SimClient::new(HUF)
    };
    let cfg =
        SimConfig { mint_cooldown: Duration::from_secs(120), extra_clients: vec![mom, huf], ..SimConfig::default() };
    DhanSim::start(cfg).await.expect("starts")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

async fn mint(sim: &DhanSim, client: &str, pin: &str) -> Value {
    let (code, _) = sim.totp_now_for(client).expect("a client the simulator serves");
    let url = format!("{}/app/generateAccessToken?dhanClientId={client}&pin={pin}&totp={code}", sim.url());
    http().post(url).send().await.expect("mint").json().await.expect("json")
}

async fn get(sim: &DhanSim, path: &str, token: &str) -> (u16, Value) {
    let r = http().get(format!("{}{path}", sim.url())).header("access-token", token).send().await.expect("call");
    (r.status().as_u16(), r.json().await.expect("json"))
}

#[tokio::test]
async fn each_client_has_its_own_token_window_and_credentials() {
    let sim = family().await;
    assert_eq!(sim.client_ids(), ["1000000001", MOM, HUF]);
    let me = mint(&sim, "1000000001", "123456").await;
    let me_token = me["accessToken"].as_str().expect("first client minted").to_string();
    // Minting for one client neither waits for another's window nor kills another's token.
    let mom = mint(&sim, MOM, "246810").await;
    let mom_token = mom["accessToken"].as_str().expect("mom minted inside the first client's window").to_string();
    assert_eq!(mom["dhanClientId"], MOM);
    assert_eq!(sim.mints(), 2);
    assert_eq!((sim.mints_for("1000000001"), sim.mints_for(MOM), sim.mints_for(HUF)), (1, 1, 0));

    let (status, profile) = get(&sim, "/v2/profile", &me_token).await;
    assert_eq!((status, profile["dhanClientId"].as_str()), (200, Some("1000000001")));
    let (status, profile) = get(&sim, "/v2/profile", &mom_token).await;
    assert_eq!((status, profile["dhanClientId"].as_str()), (200, Some(MOM)), "both tokens live at once");
    let (_, funds) = get(&sim, "/v2/fundlimit", &mom_token).await;
    assert_eq!(funds["dhanClientId"], MOM);

    // Each client's window is its own: mom again inside hers is refused.
    let again = mint(&sim, MOM, "246810").await;
    assert_eq!(again["message"], "Token can be generated once every 2 minutes.");
    // One client's PIN does not open another client's account.
    let wrong = mint(&sim, HUF, "246810").await;
    assert_eq!(wrong["message"], "Login failed. Please retry with valid credentials.");
    assert_eq!(sim.mints_for(HUF), 0);

    // A mint elsewhere kills that client's token only.
    assert!(sim.mint_elsewhere_for(MOM));
    assert!(!sim.mint_elsewhere_for("9999999999"), "an unknown client is said so");
    let (status, body) = get(&sim, "/v2/profile", &mom_token).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("DH-906")));
    assert_eq!(get(&sim, "/v2/profile", &me_token).await.0, 200);
    assert_eq!(sim.active_token_for("1000000001").as_deref(), Some(me_token.as_str()));
    assert_eq!(sim.all_tokens().len(), 3, "two mints and one mint elsewhere");
}

#[tokio::test]
async fn each_client_has_its_own_static_ip_and_consent() {
    let sim = family().await;
    let huf = SimClient::new(HUF);
    let c = http();
    // The consent flow with the HUF's own API key.
    let r = c
        .post(format!("{}/app/generate-consent?client_id={HUF}", sim.url()))
        .header("app_id", &huf.api_key)
        .header("app_secret", &huf.api_secret)
        .send()
        .await
        .expect("consent");
    let body: Value = r.json().await.expect("json");
    let consent = body["consentAppId"].as_str().expect("consent id").to_string();
    let callback = sim.login(&consent).expect("the human logs in");
    let token_id = callback.rsplit_once("tokenId=").map(|(_, t)| t.to_string()).expect("tokenId");
    // The first client's API key does not consume the HUF's consent.
    let first = SimConfig::default();
    let refused = c
        .get(format!("{}/app/consumeApp-consent?tokenId={token_id}", sim.url()))
        .header("app_id", &first.api_key)
        .header("app_secret", &first.api_secret)
        .send()
        .await
        .expect("consume");
    assert_eq!(refused.status(), 401);
    let body: Value = c
        .get(format!("{}/app/consumeApp-consent?tokenId={token_id}", sim.url()))
        .header("app_id", &huf.api_key)
        .header("app_secret", &huf.api_secret)
        .send()
        .await
        .expect("consume")
        .json()
        .await
        .expect("json");
    assert_eq!(body["dhanClientId"], HUF);
    let token = body["accessToken"].as_str().expect("token");
    // The HUF's static IP is 127.0.0.3; this call comes from 127.0.0.1.
    let (_, ip) = get(&sim, "/v2/ip/getIP", token).await;
    assert_eq!((ip["primaryIP"].as_str(), ip["detectedIP"].as_str()), (Some("127.0.0.3"), Some("127.0.0.1")));
    assert_eq!(ip["ipMatchStatus"], "MISMATCH");
    let state: Value =
        c.get(format!("{}/__sim/state", sim.url())).send().await.expect("state").json().await.expect("json");
    assert_eq!(state["clients"][2]["client_id"], HUF);
    assert_eq!(state["clients"][2]["has_active_token"], true);
    assert_eq!(state["clients"][0]["has_active_token"], false);
}

#[tokio::test]
async fn knobs_changed_at_runtime_apply_to_every_client() {
    let sim = family().await;
    sim.update_config(|c| c.token_lifetime = Duration::from_secs(60));
    let mom = mint(&sim, MOM, "246810").await;
    let expiry = mom["expiryTime"].as_str().expect("expiry");
    // A 60 s lifetime: the expiry (IST, naive) is within two minutes of now (IST).
    let now = chrono::DateTime::<chrono::Utc>::from(dhan_sim::clock::real_now());
    let now_ist = (now + chrono::Duration::minutes(330)).naive_utc();
    let exp = chrono::NaiveDateTime::parse_from_str(expiry, "%Y-%m-%dT%H:%M:%S%.3f").expect("IST time");
    assert!((exp - now_ist).num_seconds().abs() < 120, "{expiry} vs {now_ist}");
}
