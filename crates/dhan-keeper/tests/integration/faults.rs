//! The fault matrix: what breaks around the daemon, and what the trader sees. Each test runs the
//! real binary against both simulators with seconds-long tokens.

use std::time::Duration;

use dhan_sim::{Fault, TgError};
use serde_json::{Value, json};

use crate::daemon::{
    CHAT, Stack, assert_clean, eventually, eventually_within, expiry_of, now, short_sim, watch_without_gap,
};
use crate::helpers::HTTP_TOKEN;

fn read_json(path: &std::path::Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

#[tokio::test]
async fn hangs_truncated_bodies_and_refused_connections_never_let_the_token_expire() {
    let s = Stack::with_sim(short_sim(8), |m| {
        m.insert("refresh_before".into(), json!("5s"));
        m.insert("alert_before".into(), json!("2s"));
        m.insert("final_alert_before".into(), json!("1s"));
        m.insert("dhan_timeout".into(), json!("300ms"));
    })
    .await;
    let started = std::time::Instant::now();
    let d = s.start();
    eventually("the first token", || s.token_file()).await;
    // Requests that hang past the client timeout, then a body cut in half.
    s.sim.inject("generateAccessToken", Fault::Delay { ms: 1000 }, 2);
    s.sim.inject("generateAccessToken", Fault::Truncated, 1);
    watch_without_gap(&s, 1).await;
    // Dhan refuses connections (the simulator is down) until a rotation has met the refusal;
    // meanwhile the file keeps the last good token. Then Dhan comes back.
    let refused = "cannot reach Dhan for generateAccessToken";
    let before = d.log().matches(refused).count();
    s.sim.stop();
    eventually("a rotation refused while Dhan is down", || {
        let f = s.token_file().expect("readable while Dhan is down");
        assert!(expiry_of(&f) > now(), "expired while Dhan was down: {f}");
        (d.log().matches(refused).count() > before).then_some(())
    })
    .await;
    s.sim.restart().await.expect("Dhan is back");
    watch_without_gap(&s, 1).await;

    // No more mints than the policy allows: one per (lifetime - refresh_before), plus the first.
    let allowed = 2 + started.elapsed().as_secs() / 3;
    assert!(s.sim.mints() <= allowed, "{} mints in {:?}", s.sim.mints(), started.elapsed());
    let (code, _, log) = s.stop(d).await;
    assert_eq!(code, 0);
    assert!(log.contains("did not answer generateAccessToken within 300ms"), "the hang was a client timeout: {log}");
}

#[tokio::test]
async fn invalid_totp_at_a_window_edge_is_retried_once_in_the_next_window() {
    let s = Stack::new(|_| {}).await;
    s.sim.inject(
        "generateAccessToken",
        Fault::Json { status: 200, body: json!({"message": "Invalid TOTP", "status": "error"}) },
        1,
    );
    let d = s.start();
    // The retry waits for the next 30 s TOTP window.
    eventually_within(Duration::from_secs(45), "a token after the retry", || {
        (s.count(CHAT, "New Dhan token") > 0).then_some(())
    })
    .await;
    assert_eq!(s.sim.calls("generateAccessToken"), 2, "exactly one retry");
    assert_eq!(s.count(CHAT, "failed"), 0, "a retried window edge is not worth an alert");
    assert_eq!(s.stop(d).await.0, 0);
}

#[tokio::test]
async fn a_clock_far_from_dhans_is_reported() {
    let s = Stack::new(|_| {}).await;
    s.sim.set_clock_offset(chrono::Duration::seconds(40));
    let d = s.start();
    let alert = s.wait_message(CHAT, "clock").await;
    let text = alert["text"].as_str().unwrap_or_default().to_string();
    assert!((39..=41).any(|n| text.contains(&format!("{n} s behind"))), "{text}");
    let check = s.ws.run(&["check"]).await;
    assert_ne!(check.code, 0, "check fails on a 40 s offset: {}", check.all());
    assert!(check.all().contains(" s behind Dhan"), "{}", check.all());
    let (code, _, log) = s.stop(d).await;
    assert_eq!(code, 0);
    assert!(log.contains("TOTP codes will be refused"), "{log}");
}

#[tokio::test]
async fn queued_messages_arrive_in_order_after_a_telegram_outage() {
    let s = Stack::new(|_| {}).await;
    s.tg.inject_error("sendMessage", TgError::server(502), 3);
    s.tg.inject_error("sendMessage", TgError::flood(1), 1);
    let d = s.start();
    s.tg.inject_text(CHAT, CHAT, "/status");
    s.wait_message(CHAT, "Expires").await;
    let texts = s.texts(CHAT);
    assert!(texts[0].contains("New Dhan token"), "the confirmation first, then the reply: {texts:#?}");
    assert!(s.token_file().is_some(), "the rotation did not wait for Telegram");
    assert_eq!(s.stop(d).await.0, 0);
}

#[tokio::test]
async fn telegram_dropping_connections_delays_but_loses_nothing() {
    let s = Stack::new(|_| {}).await;
    s.tg.inject_drop("getMe", 1);
    s.tg.inject_drop("getUpdates", 2);
    s.tg.inject_drop("sendMessage", 2);
    let d = s.start();
    s.ask(CHAT, "/status", "Expires").await;
    s.wait_message(CHAT, "New Dhan token").await;
    let calls = s.tg.calls();
    assert!(calls.iter().filter(|c| *c == "sendmessage").count() >= 4, "{calls:?}");
    assert_eq!(s.stop(d).await.0, 0);
}

#[tokio::test]
async fn a_deleted_or_unwritable_token_file_is_rewritten_and_no_token_is_lost() {
    let s = Stack::new(|m| {
        m.insert("token_file".into(), json!("store/dhan_token.json"));
    })
    .await;
    let store = s.ws.dir.path().join("store");
    std::fs::create_dir(&store).expect("store dir");
    let file = store.join("dhan_token.json");
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    let first = read_json(&file).expect("token")["access_token"].clone();

    // Someone deletes the file: it comes back with the same token.
    std::fs::remove_file(&file).expect("delete");
    let back = eventually("the file rewritten", || read_json(&file)).await;
    assert_eq!(back["access_token"], first);

    // The disk refuses writes during a rotation (the directory is replaced by a file; root
    // ignores permission bits, so this is how the test makes writes fail).
    let moved = s.ws.dir.path().join("store.moved");
    std::fs::rename(&store, &moved).expect("move the dir away");
    std::fs::write(&store, b"not a directory").expect("blocker");
    // Past the test config's 100 ms mint window, counted from the end of the last attempt.
    tokio::time::sleep(Duration::from_millis(150)).await;
    s.ask(CHAT, "/refresh", "Getting a new token").await;
    s.wait_message(CHAT, "cannot be written").await;
    let active = s.sim.active_token().expect("Dhan issued a new token");
    assert_ne!(Value::String(active.clone()), first);
    // Nothing is lost: the new token is served and kept.
    let served: Value = reqwest::Client::new()
        .get(s.http("/token"))
        .bearer_auth(HTTP_TOKEN)
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    assert_eq!(served["access_token"], active.as_str());
    assert!(s.ask(CHAT, "/status", "Expires").await.contains("cannot be written"));
    let health = s.get("/healthz").await;
    assert!(health.contains("\"token_file_written\":false"), "{health}");

    // The disk recovers: the new token lands in the file by itself.
    std::fs::remove_file(&store).expect("remove blocker");
    std::fs::rename(&moved, &store).expect("restore");
    let healed =
        eventually("the new token saved", || read_json(&file).filter(|f| f["access_token"] == active.as_str())).await;
    assert_eq!(healed["source"], "totp");
    s.wait_message(CHAT, "written again").await;
    let (code, _, log) = s.stop(d).await;
    assert_eq!(code, 0);
    assert_clean(&log, &[&active]);
}

#[tokio::test]
async fn hostile_messages_get_a_short_answer_or_nothing_and_never_stop_the_bot() {
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    let confirmation = s.wait_message(CHAT, "New Dhan token").await;
    let junk = [
        "x".repeat(10_000),
        format!("/{}", "a".repeat(5_000)),
        "\u{0}\u{1}\u{7f}\u{202e}\u{200f}مرحبا 🚀🔥 _*[]()~`>#+-=|{}.! <b>&amp;".to_string(),
        "/status \u{0} ; rm -rf / && <script>".to_string(),
        "/help@dhan_token_bot extra words here".to_string(),
        "https://evil.example/?tokenId=../../etc/passwd".to_string(),
        "eyJ.not.ajwt".to_string(),
    ];
    for j in &junk {
        s.tg.inject_text(CHAT, CHAT, j);
    }
    // A button press whose data the bot never sent, and one on a message id that never existed.
    let id = confirmation["message_id"].as_i64().expect("id");
    s.tg.inject_callback(CHAT, CHAT, id, "drop table; --").expect("press");
    // Updates of kinds the bot does not handle, from a channel and a group.
    s.tg.inject_update(json!({"channel_post": {"message_id": 1, "date": 0, "chat": {"id": -1001234567890i64, "type": "channel", "title": "c"}, "text": "/refresh"}}));
    s.tg.inject_update(json!({"edited_message": {"message_id": 2, "date": 0, "chat": {"id": CHAT, "type": "private", "first_name": "T"}, "text": "/refresh"}}));
    s.tg.inject_update(json!({"message": {"message_id": 3, "date": 0, "chat": {"id": -4242, "type": "group", "title": "g"}, "from": {"id": 5, "is_bot": false, "first_name": "X"}, "text": "/status"}}));
    s.tg.inject_update(json!({"something_new": {"x": 1}}));
    s.tg.inject_update(json!({"message": "not an object"}));

    let status = s.ask(CHAT, "/status", "Expires").await;
    assert!(status.contains("valid"));
    for text in s.texts(CHAT) {
        assert!(text.chars().count() <= 4096, "a message over Telegram's limit");
        assert!(!text.contains("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), "junk echoed back: {text}");
    }
    assert!(s.tg.sent(-4242).is_empty(), "a group nobody configured gets nothing");
    assert_eq!(s.sim.mints(), 1, "no junk, channel post or edit caused a mint");
    let (code, _, log) = s.stop(d).await;
    assert_eq!(code, 0);
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test]
async fn secret_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    s.ask(CHAT, "/pause", "Paused").await;
    let dir = s.ws.dir.path();
    for name in ["dhan_token.json", "dhan_token.json.lock", "dhan_token.json.state"] {
        let mode = std::fs::metadata(dir.join(name)).expect(name).permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }
    assert_eq!(s.stop(d).await.0, 0);
}
