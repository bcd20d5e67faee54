//! The Telegram bot end to end: the real daemon against both simulators.

use dhan_sim::{Fault, TgError};
use serde_json::json;

use crate::daemon::{CHAT, STRANGER, Stack, assert_clean, eventually};

#[tokio::test]
async fn every_command_answers_the_authorized_chat() {
    // A long mint cooldown, so /refresh right after the first mint must be refused politely.
    let s = Stack::new(|m| {
        m.insert("mint_cooldown".into(), json!("2m"));
    })
    .await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;

    let start = s.ask(CHAT, "/start", "dhan-keeper").await;
    assert!(start.contains("automatic"), "{start}");
    assert!(start.contains("valid"), "{start}");
    assert!(start.contains(env!("CARGO_PKG_VERSION")), "{start}");

    let status = s.ask(CHAT, "/status@dhan_token_bot", "Expires").await;
    for part in ["IST", "Source: totp", "Last refresh: ✅", "Next rotation", "Dhan: ✅ reachable"] {
        assert!(status.contains(part), "/status lacks {part:?}:\n{status}");
    }

    let account = s.ask(CHAT, "/account", "Funds").await;
    assert!(account.contains("Available") && account.contains("₹"), "{account}");
    assert!(account.contains("Holdings") && account.contains("Positions"), "{account}");

    let help = s.ask(CHAT, "/help", "Commands").await;
    for c in ["/start", "/status", "/refresh", "/account", "/calendar", "/pause", "/resume", "/help"] {
        assert!(help.contains(c), "/help lacks {c}");
    }
    let unknown = s.ask(CHAT, "/frobnicate", "/help").await;
    assert!(unknown.contains("don't know"), "{unknown}");
    // A command for another bot in the same group is not ours to answer.
    let before = s.texts(CHAT).len();
    s.tg.inject_text(CHAT, CHAT, "/status@SomeOtherBot");
    s.ask(CHAT, "/help", "Commands").await;
    assert_eq!(s.texts(CHAT).len(), before + 1, "only /help was answered: {:?}", &s.texts(CHAT)[before..]);

    let mints = s.sim.mints();
    // A word after the command is not an account's name in a one-account config: ignored.
    let wait = s.ask(CHAT, "/refresh now", "⏳").await;
    assert!(wait.contains("one new token every 2m") && wait.contains("Try again in 1m"), "{wait}");
    assert!(s.ask(CHAT, "/status please", "Next rotation").await.starts_with("Token: "));
    assert_eq!(s.sim.mints(), mints, "no mint inside the cooldown");

    s.ask(CHAT, "/pause", "Paused").await;
    assert!(s.ask(CHAT, "/status", "Next rotation").await.contains("paused"));
    s.ask(CHAT, "/resume", "Resumed").await;

    let commands = s.tg.commands();
    assert_eq!(commands.as_array().map(Vec::len), Some(8), "setMyCommands registered: {commands}");

    let token = s.sim.active_token().expect("token");
    let (code, _, log) = s.stop(d).await;
    assert_eq!(code, 0);
    for text in s.texts(CHAT) {
        assert_clean(&text, &[&token]);
    }
    assert_clean(&log, &[&token]);
}

#[tokio::test]
async fn only_the_admin_changes_things_and_strangers_get_nothing() {
    const ADMIN: i64 = 222_222_222;
    let s = Stack::new(|m| {
        m.insert("admin_chat_id".into(), json!(ADMIN.to_string()));
    })
    .await;
    s.tg.add_chat(ADMIN);
    s.tg.add_chat(STRANGER);
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    let mints = s.sim.mints();

    // The alert chat may read but not change anything.
    s.ask(CHAT, "/status", "Expires").await;
    s.ask(CHAT, "/refresh", "Only the admin chat").await;
    s.ask(CHAT, "/pause", "Only the admin chat").await;
    s.ask(CHAT, "https://example.com/?tokenId=0123456789abcdef0123", "Only the admin chat").await;

    // A stranger gets no answer and causes no Dhan call; the admin hears once per hour.
    let api_calls = s.sim.calls("fundlimit");
    s.tg.inject_text(STRANGER, STRANGER, "/account");
    s.wait_message(ADMIN, &STRANGER.to_string()).await;
    s.tg.inject_text(STRANGER, STRANGER, "/refresh");
    s.tg.inject_text(STRANGER, STRANGER, "hello");
    // The admin's own command is answered after the stranger's messages were handled.
    s.ask(ADMIN, "/help", "Commands").await;
    s.ask(ADMIN, "/status", "Expires").await;
    assert!(s.tg.sent(STRANGER).is_empty(), "stranger got {:?}", s.texts(STRANGER));
    assert_eq!(s.count(ADMIN, &STRANGER.to_string()), 1, "one notice per chat per hour");
    assert_eq!(s.sim.calls("fundlimit"), api_calls, "no Dhan call for a stranger");
    assert_eq!(s.sim.mints(), mints, "no mint for the viewer or the stranger");

    // The admin may.
    s.ask(ADMIN, "/refresh", "Getting a new token").await;
    eventually("the admin's mint", || (s.sim.mints() > mints).then_some(())).await;
    let (code, _, log) = s.stop(d).await;
    assert_eq!(code, 0);
    assert!(log.contains(&STRANGER.to_string()), "the stranger's chat id is logged for the owner:\n{log}");
}

#[tokio::test]
async fn the_paste_flow_accepts_each_form_and_rejects_bad_ones() {
    // Consent mode: no PIN.
    let s = Stack::new(|m| {
        m.remove("pin");
    })
    .await;
    let d = s.start();
    // No token at start: announced with a login link and a TOTP button.
    let alert = s.wait_message(CHAT, "No valid Dhan token").await;
    let buttons = alert["reply_markup"]["inline_keyboard"][0].as_array().cloned().unwrap_or_default();
    let login = buttons.iter().find_map(|b| b["url"].as_str()).expect("a login link button").to_string();
    assert!(buttons.iter().any(|b| b["callback_data"] == "totp"), "{buttons:?}");

    // 1. The callback URL.
    let consent = url::Url::parse(&login).expect("url");
    let consent_id = consent.query_pairs().find(|(k, _)| k == "consentAppId").expect("consentAppId").1.to_string();
    let callback = s.sim.login(&consent_id).expect("simulated login");
    s.ask(CHAT, &callback, "Got a tokenId").await;
    s.wait_message(CHAT, "New Dhan token (consent)").await;
    assert_eq!(s.token_file().expect("token")["source"], "consent");

    // The same URL again: the tokenId is spent.
    let reply = s.ask(CHAT, &callback, "Nothing was stored").await;
    assert!(reply.contains("tokenId"), "{reply}");

    // 2. A bare tokenId (from a fresh /refresh link).
    let msg = s.ask(CHAT, "/refresh", "Log in to Dhan").await;
    assert!(msg.contains("TOTP code now"), "{msg}");
    let link =
        s.tg.sent(CHAT)
            .last()
            .and_then(|m| m["reply_markup"]["inline_keyboard"][0][0]["url"].as_str().map(String::from))
            .expect("link");
    let id = url::Url::parse(&link)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "consentAppId")
        .expect("id")
        .1
        .to_string();
    let callback = s.sim.login(&id).expect("login");
    let token_id = url::Url::parse(&callback)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "tokenId")
        .expect("tokenId")
        .1
        .to_string();
    s.ask(CHAT, &token_id, "Got a tokenId").await;
    eventually("the second consent token", || (s.count(CHAT, "New Dhan token (consent)") == 2).then_some(())).await;

    // 3. An access token minted elsewhere: validated with Dhan, stored as manual.
    s.sim.mint_elsewhere();
    let pasted = s.sim.active_token().expect("token minted elsewhere");
    s.ask(CHAT, &pasted, "checking it with Dhan").await;
    s.wait_message(CHAT, "New Dhan token (manual)").await;
    assert_eq!(s.token_file().expect("token")["source"], "manual");
    assert_eq!(s.token_file().expect("token")["access_token"], pasted.as_str());

    // A dead token is refused and nothing changes.
    s.sim.mint_elsewhere();
    let reply = s.ask(CHAT, &pasted, "Nothing was stored").await;
    assert!(reply.contains("rejects that token"), "{reply}");
    assert_eq!(s.token_file().expect("token")["access_token"], pasted.as_str(), "file untouched");

    // Anything else says what was expected.
    s.ask(CHAT, "https://example.com/callback?code=1", "has no tokenId").await;
    s.ask(CHAT, "good morning", "I expected").await;

    let (code, _, log) = s.stop(d).await;
    assert_eq!(code, 0);
    let live = s.sim.active_token().expect("token");
    for text in s.texts(CHAT) {
        assert_clean(&text, &[&pasted, &live]);
    }
    assert_clean(&log, &[&pasted, &live]);
}

#[tokio::test]
async fn flood_limits_and_outages_delay_messages_but_lose_none() {
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    s.tg.inject_error("sendMessage", TgError::flood(1), 1);
    s.tg.inject_error("sendMessage", TgError::server(502), 2);
    s.ask(CHAT, "/status", "Expires").await;
    let sends = s.tg.calls().iter().filter(|c| *c == "sendmessage").count();
    assert!(sends >= 5, "1 confirmation + 3 failed tries + the reply; saw {sends}");
    // Polling survives 5xx and 429 too.
    s.tg.inject_error("getUpdates", TgError::server(500), 2);
    s.tg.inject_error("getUpdates", TgError::flood(1), 1);
    s.ask(CHAT, "/help", "Commands").await;
    let (code, _, _) = s.stop(d).await;
    assert_eq!(code, 0);
}

#[tokio::test]
async fn a_restart_never_handles_an_old_update_twice() {
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    s.ask(CHAT, "/help", "Commands").await;
    let (code, _, _) = s.stop(d).await;
    assert_eq!(code, 0);

    let d = s.start();
    s.ask(CHAT, "/status", "Expires").await;
    assert_eq!(s.count(CHAT, "Commands"), 1, "/help was not handled again: {:?}", s.texts(CHAT));
    // /pause survives a restart too.
    s.ask(CHAT, "/pause", "Paused").await;
    let (code, _, _) = s.stop(d).await;
    assert_eq!(code, 0);
    let d = s.start();
    assert!(s.ask(CHAT, "/status", "Next rotation").await.contains("paused"));
    s.ask(CHAT, "/resume", "Resumed").await;
    // Even after kill -9 right after handling.
    s.ask(CHAT, "/start", "dhan-keeper").await;
    d.kill9().await;
    let d = s.start();
    s.ask(CHAT, "/status", "Expires").await;
    assert_eq!(s.count(CHAT, "👋"), 1, "/start was not handled again: {:?}", s.texts(CHAT));
    assert_eq!(s.stop(d).await.0, 0);
}

#[tokio::test]
async fn an_alert_carries_a_button_that_works() {
    let s = Stack::new(|m| {
        m.insert("alert_after_failures".into(), json!("2"));
    })
    .await;
    // Dhan refuses every mint for a while: the failure alert comes with "Refresh now".
    s.sim.inject("generateAccessToken", Fault::Status { status: 500 }, 1000);
    let d = s.start();
    let alert = s.wait_message(CHAT, "rotation failed").await;
    let button = &alert["reply_markup"]["inline_keyboard"][0][0];
    assert_eq!(button["callback_data"], "refresh", "{alert}");

    s.sim.clear_faults();
    let message_id = alert["message_id"].as_i64().expect("id");
    s.tg.inject_callback(CHAT, CHAT, message_id, "refresh").expect("button press");
    s.wait_message(CHAT, "New Dhan token (totp)").await;
    eventually("the button press answered", || (!s.tg.callback_answers().is_empty()).then_some(())).await;
    // The streak is over: however many mints failed, it was reported once.
    assert_eq!(s.count(CHAT, "rotation failed"), 1, "one failure alert per streak: {:#?}", s.texts(CHAT));
    assert_eq!(s.stop(d).await.0, 0);
}

#[tokio::test]
async fn another_poller_on_the_same_bot_is_reported_and_survived() {
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    eventually("the daemon's long poll", || (s.tg.parked_polls() > 0).then_some(())).await;
    // Another process (say, the old Python bot) polls the same bot token.
    let url = format!("{}/bot{}/getUpdates?timeout=0", s.tg.url(), crate::helpers::BOT_TOKEN);
    reqwest::get(&url).await.expect("the other poller");
    eventually("the 409 reported", || d.log().contains("another process is polling this bot").then_some(())).await;
    // The daemon keeps going once the other poller stops.
    s.ask(CHAT, "/help", "Commands").await;
    assert_eq!(s.stop(d).await.0, 0);
}

#[tokio::test]
async fn check_asks_telegram_who_the_bot_is() {
    let s = Stack::new(|_| {}).await;
    let ok = s.ws.run(&["check"]).await;
    assert!(ok.stdout.contains("✅ Telegram    bot @dhan_token_bot"), "{}", ok.all());
    assert_eq!(ok.code, 0, "{}", ok.all());
    ok.assert_no_secrets();

    let wrong = Stack::new(|m| {
        m.insert("telegram_bot_token".into(), json!("7000000001:AAwrongTokenWrongTokenWrong_12345"));
    })
    .await;
    let refused = wrong.ws.run(&["check"]).await;
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stdout.contains("❌ Telegram") && refused.stdout.contains("telegram_bot_token"),
        "{}",
        refused.all()
    );
    assert!(!refused.all().contains("AAwrongTokenWrongTokenWrong_12345"), "the token is not echoed");
}
