//! The daemon against the simulator's live-report defaults (reference §8b): RenewToken refuses
//! APP tokens with HTTP 500, refusals restart the mint window, superseded tokens answer 400
//! DH-906, a live token can be rejected once, wrong credentials must not be retried, getIP.

use std::time::Duration;

use dhan_sim::{Account, Fault, StaticIp, TokenRejection};
use serde_json::{Value, json};

use crate::daemon::{CHAT, Stack, eventually, eventually_or_none, short_sim, watch_without_gap};
use crate::helpers::{self, PIN};

/// How long a test watches for something that must *not* happen: several times the fastest
/// retry the test configs allow (retry_max 1 s), so a retry loop would show.
const QUIET: Duration = Duration::from_secs(3);

#[tokio::test]
async fn app_tokens_are_never_sent_to_renew_token() {
    let s = Stack::with_sim(short_sim(6), |m| {
        m.insert("refresh_before".into(), json!("3s"));
        m.insert("alert_before".into(), json!("2s"));
        m.insert("final_alert_before".into(), json!("1s"));
    })
    .await;
    let d = s.start();
    eventually("the first token", || s.token_file()).await;
    watch_without_gap(&s, 2).await;
    assert_eq!(s.sim.calls("RenewToken"), 0, "an APP token is minted anew, never renewed");
    let (code, _, log) = s.stop(d).await;
    assert_eq!(code, 0);
    assert!(!log.contains("Dhan is having trouble"), "no outage was reported:\n{log}");
}

#[tokio::test]
async fn a_pasted_dhan_web_token_is_renewed_and_stays_a_web_token() {
    let s = Stack::with_sim(short_sim(8), |m| {
        m.insert("refresh_before".into(), json!("4s"));
        m.insert("alert_before".into(), json!("3s"));
        m.insert("final_alert_before".into(), json!("1s"));
    })
    .await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    s.sim.mint_elsewhere();
    let web = s.sim.active_token().expect("a Dhan Web token");
    s.ask(CHAT, &web, "checking it with Dhan").await;
    eventually("the pasted token in the file", || s.token_file().filter(|f| f["access_token"] == web.as_str())).await;
    let mints = s.sim.mints();
    let renewed = eventually("a renewal", || {
        s.token_file().filter(|f| f["source"] == "renew" && f["access_token"] != web.as_str())
    })
    .await;
    assert_eq!(s.sim.mints(), mints, "renewed, not minted");
    let claims = dhan_keeper::dhan::jwt::decode(renewed["access_token"].as_str().expect("token")).expect("jwt");
    assert_eq!(claims.token_consumer_type.as_deref(), Some("SELF"), "still a Dhan Web token");
    assert_eq!(s.stop(d).await.0, 0);
}

#[tokio::test]
async fn one_transient_rejection_is_rechecked_and_nothing_is_minted() {
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    let token = s.token_file().expect("token")["access_token"].clone();
    let mints = s.sim.mints();
    s.sim.inject("profile", Fault::RejectToken { code: TokenRejection::Dh906 }, 1);
    eventually("the rejection is noticed", || d.log().contains("checking again in").then_some(())).await;
    eventually("the re-check clears it", || d.log().contains("the rejection was transient").then_some(())).await;
    assert_eq!(s.sim.mints(), mints, "a single rejection must not cost the trader a token");
    assert_eq!(s.token_file().expect("token")["access_token"], token);
    assert_eq!(s.count(CHAT, "revoked"), 0, "{:#?}", s.texts(CHAT));
    let status = s.ask(CHAT, "/status", "Token").await;
    assert!(status.contains("valid"), "{status}");
    assert_eq!(s.stop(d).await.0, 0);
}

#[tokio::test]
async fn a_superseded_token_is_confirmed_then_replaced_and_announced() {
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    let first = s.token_file().expect("token")["access_token"].clone();
    let profiles = s.sim.calls("profile");
    s.sim.mint_elsewhere();
    let alert = s.wait_message(CHAT, "revoked").await;
    let text = alert["text"].as_str().unwrap_or_default();
    assert!(text.contains("3 times"), "confirmed by re-probes, and says so: {text}");
    assert!(s.sim.calls("profile") >= profiles + 3, "three checks before acting");
    eventually("a new token in the file", || {
        s.token_file()
            .filter(|f| f["access_token"] != first && s.sim.active_token().as_deref() == f["access_token"].as_str())
    })
    .await;
    s.wait_message(CHAT, "New Dhan token (totp)").await;
    assert_eq!(s.stop(d).await.0, 0);
}

#[tokio::test]
async fn a_refusal_at_start_up_is_said_at_once_and_followed_by_exactly_one_attempt_after_the_window() {
    let s = Stack::new(|m| {
        m.insert("mint_cooldown".into(), json!("3s"));
    })
    .await;
    // Dhan's window is 2 s here; someone minted just now (another script, a manual refresh).
    s.sim.update_config(|c| c.mint_cooldown = Duration::from_secs(2));
    helpers::client(&s.sim)
        .generate_access_token(&dhan_keeper::secret::Secret::new(PIN), &s.sim.totp_now().expect("totp").0)
        .await
        .expect("a mint elsewhere");
    let d = s.start();
    let refused = s.wait_message(CHAT, "Dhan refused a new token").await;
    let text = refused["text"].as_str().unwrap_or_default().to_string();
    assert!(text.contains("next attempt at") && text.contains("3s"), "{text}");
    eventually("the refusal in the log", || d.log().contains("Dhan refused the mint").then_some(())).await;
    eventually("the token after the window", || s.token_file()).await;
    assert_eq!(s.sim.calls("generateAccessToken"), 3, "elsewhere, refused, then exactly one more");
    let log = s.sim.call_log();
    let mints: Vec<_> = log.iter().filter(|c| c.route == "generateAccessToken").map(|c| c.received).collect();
    let gap = mints[2].duration_since(mints[1]).expect("ordered");
    assert!(gap >= Duration::from_secs(3), "the configured mint_cooldown is honoured after a refusal: {gap:?}");
    assert_eq!(s.stop(d).await.0, 0);
}

#[tokio::test]
async fn a_wrong_pin_is_tried_once_and_not_again_until_the_admin_acts() {
    let s = Stack::new(|m| {
        m.insert("pin".into(), json!("000000"));
    })
    .await;
    let d = s.start();
    let alert = s.wait_message(CHAT, "Dhan refused the credentials").await;
    assert!(alert["text"].as_str().is_some_and(|t| t.contains("stopped")), "{alert}");
    assert_eq!(eventually_or_none(QUIET, || (s.sim.calls("generateAccessToken") > 1).then_some(())).await, None);
    assert_eq!(s.sim.calls("generateAccessToken"), 1, "one wrong PIN, not a retry loop");
    let status = s.ask(CHAT, "/status", "Token").await;
    assert!(status.contains("Automatic minting stopped"), "{status}");

    // The admin asks: exactly one more attempt, and the answer names the credentials.
    let reply = s.ask(CHAT, "/refresh", "No new token").await;
    assert!(reply.contains("refused the credentials"), "{reply}");
    assert_eq!(s.sim.calls("generateAccessToken"), 2);

    // A restart with the same config does not try again...
    assert_eq!(s.stop(d).await.0, 0);
    let d = s.start();
    s.ask(CHAT, "/status", "Automatic minting stopped").await;
    assert_eq!(s.sim.calls("generateAccessToken"), 2);
    assert_eq!(s.stop(d).await.0, 0);
    // ...a fixed config does.
    let mut cfg: serde_json::Map<String, Value> =
        serde_json::from_slice(&std::fs::read(s.ws.config_path()).expect("config")).expect("json");
    cfg.insert("pin".into(), json!(PIN));
    s.ws.write_config(&serde_json::to_string(&cfg).expect("json"));
    let d = s.start();
    eventually("a token once the PIN is fixed", || s.token_file()).await;
    assert_eq!(s.stop(d).await.0, 0);
}

#[tokio::test]
async fn the_static_ip_check_reports_a_match_and_warns_once_about_a_mismatch() {
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    let health = eventually_json(&s, |h| !h["static_ip"].is_null()).await;
    assert_eq!(health["static_ip"]["orders_allowed"], true, "{health}");
    let status = s.ask(CHAT, "/status", "Static IP: ✅").await;
    assert!(status.contains("127.0.0.1 is a registered static IP"), "{status}");
    assert_eq!(s.stop(d).await.0, 0);

    s.sim.set_account(Account {
        static_ip: StaticIp { primary_ip: "203.0.113.7".into(), ..StaticIp::default() },
        ..Account::default()
    });
    let d = s.start();
    let alert = s.wait_message(CHAT, "Dhan will refuse API orders").await;
    assert!(alert["text"].as_str().is_some_and(|t| t.contains("203.0.113.7")), "{alert}");
    let health = eventually_json(&s, |h| !h["static_ip"].is_null()).await;
    assert_eq!((health["status"].as_str(), health["static_ip"]["orders_allowed"].as_bool()), (Some("ok"), Some(false)));
    s.ask(CHAT, "/status", "Static IP: ⚠️").await;
    assert_eq!(s.stop(d).await.0, 0);
    // Once a day, not once a start.
    let d = s.start();
    eventually_json(&s, |h| !h["static_ip"].is_null()).await;
    s.ask(CHAT, "/status", "Static IP: ⚠️").await;
    assert_eq!(s.count(CHAT, "🌐 <b>Dhan will refuse API orders"), 0, "sent as HTML, read back as text");
    assert_eq!(s.count(CHAT, "🌐 Dhan will refuse API orders"), 1, "{:#?}", s.texts(CHAT));
    assert_eq!(s.stop(d).await.0, 0);
}

/// Polls `/healthz` until `check` holds.
async fn eventually_json(s: &Stack, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..1000 {
        if let Ok(body) = reqwest::get(s.http("/healthz")).await
            && let Ok(v) = body.json::<Value>().await
            && check(&v)
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("/healthz never showed what was expected");
}

#[tokio::test]
async fn refresh_never_hides_a_credential_error_behind_the_window() {
    let sim = helpers::sim().await;
    let ws = helpers::Workspace::with(&sim, |m| {
        m.insert("pin".into(), json!("000000"));
        m.remove("telegram_bot_token");
    });
    let first = ws.run(&["refresh"]).await;
    assert_eq!(first.code, 1, "{}", first.all());
    assert!(first.stderr.contains("refused the credentials"), "{}", first.stderr);
    // Inside the window (125 s by default, counted from that attempt): the wait and the reason.
    let second = ws.run(&["refresh"]).await;
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(second.stderr.contains("counted from the last attempt"), "{}", second.stderr);
    assert!(second.stderr.contains("Dhan refused the credentials"), "the wait must not hide it: {}", second.stderr);
    assert_eq!(sim.calls("generateAccessToken"), 1, "the second run did not call Dhan inside the window");
    first.assert_no_secrets();
    second.assert_no_secrets();
}

#[tokio::test]
async fn a_slow_token_less_mint_reply_counts_as_an_attempt_and_the_next_waits_the_window() {
    let s = Stack::new(|m| {
        m.insert("mint_cooldown".into(), json!("1500ms"));
    })
    .await;
    s.sim.update_config(|c| c.mint_cooldown = Duration::from_secs(1));
    let envelope = json!({"message": "Something went wrong, please try again", "status": "error"});
    s.sim.inject(
        "generateAccessToken",
        Fault::SlowReply { ms: 1500, status: 200, body: envelope, counts_as_mint: true },
        1,
    );
    let d = s.start();
    eventually("a token after the slow failure", || s.token_file()).await;
    assert_eq!(s.sim.calls("generateAccessToken"), 2, "one slow failure, then one success");
    assert!(!d.log().contains("Dhan refused the mint"), "the retry waited out the window:\n{}", d.log());
    assert_eq!(s.stop(d).await.0, 0);
}
