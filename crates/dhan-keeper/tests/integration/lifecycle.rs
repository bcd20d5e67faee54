//! `dhan-keeper run` end to end: rotation, reuse, alerts, hook, HTTP, lock, signals, outages.

use std::time::Duration;

use dhan_keeper::token::{Token, TokenSource, TokenStore};
use dhan_sim::{Fault, TgError};
use serde_json::{Value, json};

use crate::daemon::{CHAT, Stack, assert_clean, eventually, now, short_sim, watch_without_gap};
use crate::helpers::{self, HTTP_TOKEN, PIN};

#[tokio::test]
async fn rotates_before_expiry_with_no_gap_and_hands_the_token_to_the_hook() {
    let hook_out = tempfile::tempdir().expect("tempdir");
    let out = hook_out.path().join("hook.out");
    let script = format!(
        r#"printf '%s|%s|%s|%s' "$DHAN_ACCESS_TOKEN" "$DHAN_TOKEN_EXPIRY" "$DHAN_CLIENT_ID" "$#" > {}"#,
        out.display()
    );
    let s = Stack::with_sim(short_sim(6), |m| {
        m.insert("refresh_before".into(), json!("3s"));
        m.insert("alert_before".into(), json!("2s"));
        m.insert("final_alert_before".into(), json!("1s"));
        m.insert("on_refresh".into(), json!(["sh", "-c", script]));
    })
    .await;
    // Telegram is down when the daemon starts: the token lifecycle does not wait for it.
    s.tg.inject_error("getMe", TgError::server(502), 3);
    let d = s.start();
    eventually("the first token", || s.token_file()).await;
    watch_without_gap(&s, 2).await;

    let file = s.token_file().expect("token");
    let token = file["access_token"].as_str().expect("token").to_string();
    let hook = eventually("the hook saw the latest token", || {
        std::fs::read_to_string(&out).ok().filter(|h| h.starts_with(&format!("{token}|")))
    })
    .await;
    let parts: Vec<&str> = hook.split('|').collect();
    assert!(parts[1].ends_with("+05:30"), "expiry in IST with its offset: {}", parts[1]);
    assert_eq!(parts[2], "1000000001");
    assert_eq!(parts[3], "0", "no positional arguments: the token is in the environment only");

    // Every rotation was confirmed once Telegram came back; no expiry alert was needed.
    eventually("three confirmations", || (s.count(CHAT, "New Dhan token (totp)") >= 3).then_some(())).await;
    assert_eq!(s.count(CHAT, "expires in"), 0, "{:?}", s.texts(CHAT));

    let (code, elapsed, log) = s.stop(d).await;
    assert_eq!(code, 0, "SIGTERM exits 0:\n{log}");
    assert!(elapsed < Duration::from_secs(5), "SIGTERM took {elapsed:?}; it must not wait out a long poll");
    assert_clean(&log, &[&token]);
}

#[tokio::test]
async fn a_restart_reuses_the_saved_token_and_a_second_instance_is_refused() {
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    let first = s.token_file().expect("token");
    let mints = s.sim.mints();

    let second = s.ws.run(&["run"]).await;
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(
        second.stderr.contains("dhan-keeper run") && second.stderr.contains(&d.pid().to_string()),
        "names the holder: {}",
        second.stderr
    );
    second.assert_no_secrets();

    let (code, _, _) = s.stop(d).await;
    assert_eq!(code, 0);
    let d = s.start();
    eventually("the restart checked the token", || d.log().contains("reusing the saved token").then_some(())).await;
    s.ask(CHAT, "/status", "Expires").await;
    assert_eq!(s.sim.mints(), mints, "no mint on a plain restart");
    assert_eq!(s.token_file().expect("token")["access_token"], first["access_token"]);
    assert_eq!(s.stop(d).await.0, 0);
}

#[tokio::test]
async fn consent_mode_alerts_each_step_exactly_once_with_a_login_link_and_a_live_totp_button() {
    let s = Stack::with_sim(short_sim(7), |m| {
        m.remove("pin");
        m.insert("alert_before".into(), json!("5s"));
        m.insert("final_alert_before".into(), json!("3s"));
        m.insert("refresh_before".into(), json!("4s"));
    })
    .await;
    // A token obtained earlier (e.g. by yesterday's login), already on disk.
    let minted = helpers::client(&s.sim)
        .generate_access_token(&dhan_keeper::secret::Secret::new(PIN), &s.sim.totp_now().expect("totp").0)
        .await
        .expect("mint");
    let token = Token::from_minted(minted, TokenSource::Consent, now());
    TokenStore::new(s.ws.token_path()).save(&token).expect("save");

    let d = s.start();
    let early = s.wait_message(CHAT, "expires in").await;
    let buttons = early["reply_markup"]["inline_keyboard"][0].as_array().cloned().unwrap_or_default();
    let link = buttons.iter().find_map(|b| b["url"].as_str()).expect("login link");
    assert!(link.contains("consentAppId="), "{link}");
    assert!(early["text"].as_str().is_some_and(|t| t.contains("Paste the address")), "instructions: {early}");

    // The TOTP button answers with the code current when pressed.
    let id = early["message_id"].as_i64().expect("id");
    s.tg.inject_callback(CHAT, CHAT, id, "totp").expect("press");
    let answer = eventually("the TOTP answer", || s.tg.callback_answers().into_iter().next()).await;
    let text = answer.text.expect("text");
    let code = text.split_whitespace().nth(1).expect("code");
    assert!(code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()), "{text}");
    assert!(text.contains("s left") && answer.show_alert, "{text}");

    s.wait_message(CHAT, "🚨").await;
    s.wait_message(CHAT, "token expired").await;
    let d2 = {
        let (code, _, _) = s.stop(d).await;
        assert_eq!(code, 0);
        s.start()
    };
    // After a restart past expiry nothing is repeated.
    s.ask(CHAT, "/status", "expired").await;
    assert_eq!(s.count(CHAT, "⚠"), 1, "{:#?}", s.texts(CHAT));
    assert_eq!(s.count(CHAT, "🚨"), 1, "{:#?}", s.texts(CHAT));
    assert_eq!(s.count(CHAT, "token expired"), 1, "{:#?}", s.texts(CHAT));
    assert_eq!(s.sim.mints(), 1, "consent mode never mints");
    assert_eq!(s.stop(d2).await.0, 0);
}

#[tokio::test]
async fn the_http_endpoint_serves_health_metrics_and_the_token_only_to_the_bearer() {
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    let token = s.token_file().expect("token")["access_token"].as_str().expect("token").to_string();
    let http = reqwest::Client::new();

    let health = http.get(s.http("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    let body = health.text().await.expect("body");
    assert!(body.contains("\"token_valid\":true"), "{body}");
    assert_clean(&body, &[&token]);

    let metrics = http.get(s.http("/metrics")).send().await.expect("metrics").text().await.expect("body");
    for line in [
        "dhan_keeper_token_expiry_timestamp_seconds ",
        "dhan_keeper_token_seconds_to_expiry ",
        "dhan_keeper_rotations_total{source=\"totp\"} 1",
        "dhan_keeper_telegram_send_failures_total 0",
    ] {
        assert!(metrics.contains(line), "metrics lack {line:?}:\n{metrics}");
    }
    assert_clean(&metrics, &[&token]);

    for auth in [None, Some("Bearer wrong-token-wrong-token"), Some(&format!("Bearer {HTTP_TOKEN}x")), Some(HTTP_TOKEN)]
    {
        let mut req = http.get(s.http("/token"));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.expect("token");
        assert_eq!(resp.status(), 401, "{auth:?}");
        assert_clean(&resp.text().await.expect("body"), &[&token]);
    }
    let ok = http.get(s.http("/token")).bearer_auth(HTTP_TOKEN).send().await.expect("token");
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.expect("json");
    assert_eq!(body["access_token"], token.as_str());
    assert_eq!(body["client_id"], "1000000001");
    assert_eq!(s.stop(d).await.0, 0);
}

#[tokio::test]
async fn when_dhan_fails_for_a_while_the_token_still_never_expires() {
    let s = Stack::with_sim(short_sim(8), |m| {
        m.insert("refresh_before".into(), json!("5s"));
        m.insert("alert_before".into(), json!("2s"));
        m.insert("final_alert_before".into(), json!("1s"));
    })
    .await;
    let d = s.start();
    eventually("the first token", || s.token_file()).await;
    // Five failures of different kinds, then Dhan recovers.
    s.sim.inject("generateAccessToken", Fault::Status { status: 500 }, 2);
    s.sim.inject("generateAccessToken", Fault::Drop, 1);
    s.sim.inject("generateAccessToken", Fault::RateLimit, 1);
    s.sim.inject("generateAccessToken", Fault::Garbage, 1);
    watch_without_gap(&s, 1).await;
    s.wait_message(CHAT, "rotation failed 3×").await;
    assert_eq!(s.count(CHAT, "rotation failed"), 1, "one alert per failure streak: {:#?}", s.texts(CHAT));
    let metrics = s.get("/metrics").await;
    assert!(metrics.contains("dhan_keeper_rotation_failures_total{reason=\"upstream\"} 2"), "{metrics}");
    assert_eq!(s.stop(d).await.0, 0);
}

#[tokio::test]
async fn a_token_revoked_elsewhere_is_noticed_and_replaced() {
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    let first = s.token_file().expect("token")["access_token"].clone();
    s.sim.mint_elsewhere();
    s.wait_message(CHAT, "revoked").await;
    let replaced = eventually("a new token in the file", || {
        s.token_file()
            .filter(|f| f["access_token"] != first && s.sim.active_token().as_deref() == f["access_token"].as_str())
    })
    .await;
    assert_eq!(replaced["source"], "totp");
    assert_eq!(s.stop(d).await.0, 0);
}

#[tokio::test]
async fn a_failing_hook_is_reported_but_the_token_is_kept() {
    let s = Stack::new(|m| {
        m.insert("on_refresh".into(), json!(["sh", "-c", "echo reload failed: $DHAN_ACCESS_TOKEN >&2; exit 3"]));
    })
    .await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    let alert = s.wait_message(CHAT, "on_refresh command failed").await;
    let text = alert["text"].as_str().expect("text");
    assert!(text.contains("exit status: 3") && text.contains("reload failed"), "{text}");
    let token = s.token_file().expect("the token is kept")["access_token"].as_str().expect("token").to_string();
    let metrics = s.get("/metrics").await;
    assert!(metrics.contains("dhan_keeper_hook_failures_total 1"), "{metrics}");
    let (code, _, log) = s.stop(d).await;
    assert_eq!(code, 0);
    assert_clean(text, &[&token]);
    assert_clean(&log, &[&token]);
}
