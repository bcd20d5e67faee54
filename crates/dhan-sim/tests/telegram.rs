//! The fake Bot API over real HTTP.

use std::time::Duration;

use dhan_sim::{TelegramSim, TgError};
use serde_json::{Value, json};

const TOKEN: &str = "7000000001:AAtestTokenForTheFakeBotApi_123456";

/// Waits (bounded) until `sim` has exactly `n` long polls parked.
async fn until_parked(sim: &TelegramSim, n: usize) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while sim.parked_polls() != n {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the long poll parked");
}

async fn call(sim: &TelegramSim, method: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/bot{TOKEN}/{method}", sim.url()))
        .json(&body)
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.json().await.expect("json"))
}

#[tokio::test]
async fn long_polling_confirms_offsets_and_wakes_on_injection() {
    let sim = TelegramSim::start(TOKEN).await.expect("starts");
    let (status, me) = call(&sim, "GetMe", json!({})).await;
    assert_eq!((status, me["result"]["id"].clone()), (200, json!(7_000_000_001i64)), "case-insensitive method");
    let id = sim.inject_text(42, 42, "/status@dhan_token_bot");
    let (_, first) = call(&sim, "getUpdates", json!({"timeout": 0})).await;
    assert_eq!(first["result"][0]["update_id"], json!(id));
    assert_eq!(first["result"][0]["message"]["entities"][0]["type"], "bot_command");
    let (_, again) = call(&sim, "getUpdates", json!({"offset": id + 1, "timeout": 0})).await;
    assert_eq!(again["result"], json!([]), "confirmed updates are gone");

    let poll = {
        let url = format!("{}/bot{TOKEN}/getUpdates", sim.url());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .json(&json!({"offset": id + 1, "timeout": 30}))
                .send()
                .await
                .expect("poll")
                .json::<Value>()
                .await
                .expect("json")
        })
    };
    // Inject only once the poll is parked, so this tests the wake-up, not the first check.
    until_parked(&sim, 1).await;
    sim.inject_text(42, 42, "hello");
    let woke = tokio::time::timeout(Duration::from_secs(10), poll).await.expect("woke well before 30 s").expect("task");
    assert_eq!(woke["result"][0]["message"]["text"], "hello");
}

#[tokio::test]
async fn a_second_poller_kicks_the_first_with_409() {
    let sim = TelegramSim::start(TOKEN).await.expect("starts");
    let url = format!("{}/bot{TOKEN}/getUpdates", sim.url());
    let first = tokio::spawn({
        let url = url.clone();
        async move { reqwest::Client::new().post(url).json(&json!({"timeout": 30})).send().await.expect("poll") }
    });
    until_parked(&sim, 1).await;
    let second = tokio::spawn(async move {
        reqwest::Client::new().post(url).json(&json!({"timeout": 1})).send().await.expect("poll")
    });
    let kicked = tokio::time::timeout(Duration::from_secs(10), first).await.expect("kicked").expect("task");
    assert_eq!(kicked.status(), 409);
    let body: Value = kicked.json().await.expect("json");
    assert!(
        body["description"].as_str().expect("text").starts_with("Conflict: terminated by other getUpdates request")
    );
    assert_eq!(second.await.expect("task").status(), 200);
}

#[tokio::test]
async fn send_message_refuses_what_telegram_refuses() {
    let sim = TelegramSim::start(TOKEN).await.expect("starts");
    let (s, b) = call(&sim, "sendMessage", json!({"chat_id": 42, "text": "hi"})).await;
    assert_eq!((s, b["description"].clone()), (400, json!("Bad Request: chat not found")));
    sim.add_chat(42);
    let (s, b) = call(&sim, "sendMessage", json!({"chat_id": 42, "text": ""})).await;
    assert_eq!((s, b["description"].clone()), (400, json!("Bad Request: message text is empty")));
    let (s, b) = call(&sim, "sendMessage", json!({"chat_id": 42, "text": "x".repeat(4097)})).await;
    assert_eq!((s, b["description"].clone()), (400, json!("Bad Request: message is too long")));
    let (s, b) =
        call(&sim, "sendMessage", json!({"chat_id": 42, "text": "expires 08.30", "parse_mode": "MarkdownV2"})).await;
    assert_eq!(s, 400);
    assert!(b["description"].as_str().expect("text").starts_with("Bad Request: can't parse entities"));
    sim.inject_error("sendmessage", TgError::flood(7), 1);
    let r = reqwest::Client::new()
        .post(format!("{}/bot{TOKEN}/sendMessage", sim.url()))
        .json(&json!({"chat_id": 42, "text": "hi"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    let b: Value = r.json().await.expect("json");
    assert_eq!(b["parameters"]["retry_after"], 7);
    let markup = json!({"inline_keyboard": [[{"text": "Refresh now", "callback_data": "refresh"}]]});
    let (s, b) = call(
        &sim,
        "sendMessage",
        json!({"chat_id": 42, "text": "<b>Token</b> expires", "parse_mode": "HTML", "reply_markup": markup}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(b["result"]["text"], "Token expires", "stored as parsed text");
    assert_eq!(sim.sent(42).len(), 1);
    let mid = b["result"]["message_id"].as_i64().expect("id");
    let cb = sim.inject_callback(42, 42, mid, "refresh").expect("button exists");
    let (s, _) = call(&sim, "answerCallbackQuery", json!({"callback_query_id": cb})).await;
    assert_eq!(s, 200);
    let (s, _) = call(&sim, "answerCallbackQuery", json!({"callback_query_id": cb})).await;
    assert_eq!(s, 400, "ids are answered once");
    let r = reqwest::Client::new().post(format!("{}/bot1:wrong/getMe", sim.url())).send().await.expect("request");
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn buttons_edits_and_server_errors_behave_like_telegram() {
    let sim = TelegramSim::start(TOKEN).await.expect("starts");
    sim.add_chat(42);
    let markup = json!({"inline_keyboard": [[{"text": "Refresh now", "callback_data": "refresh"}]]});
    let (_, sent) = call(
        &sim,
        "sendMessage",
        json!({"chat_id": 42, "text": "<b>hi</b>", "parse_mode": "HTML", "reply_markup": markup}),
    )
    .await;
    let message_id = sent["result"]["message_id"].as_i64().expect("id");

    // A press, answered once; a second answer to the same query is refused.
    let query = sim.inject_callback(42, 42, message_id, "refresh").expect("press");
    let (_, updates) = call(&sim, "getUpdates", json!({"timeout": 0})).await;
    assert_eq!(updates["result"][0]["callback_query"]["data"], "refresh");
    assert_eq!(updates["result"][0]["callback_query"]["message"]["message_id"], json!(message_id));
    let (ok, _) =
        call(&sim, "answerCallbackQuery", json!({"callback_query_id": query, "text": "On it", "show_alert": true}))
            .await;
    assert_eq!(ok, 200);
    let (again, body) = call(&sim, "answerCallbackQuery", json!({"callback_query_id": query})).await;
    assert_eq!(again, 400, "{body}");
    assert_eq!(sim.callback_answers()[0].text.as_deref(), Some("On it"));
    assert!(sim.callback_answers()[0].show_alert);

    // Edits: the text changes, an identical edit is "not modified", an unknown message is 400.
    let (status, edited) =
        call(&sim, "editMessageText", json!({"chat_id": 42, "message_id": message_id, "text": "done"})).await;
    assert_eq!((status, edited["result"]["text"].clone()), (200, json!("done")));
    assert_eq!(sim.sent(42)[0]["text"], "done");
    let (same, body) =
        call(&sim, "editMessageText", json!({"chat_id": 42, "message_id": message_id, "text": "done"})).await;
    assert_eq!(same, 400);
    assert!(body["description"].as_str().is_some_and(|d| d.contains("message is not modified")), "{body}");
    let (missing, _) = call(&sim, "editMessageText", json!({"chat_id": 42, "message_id": 999, "text": "x"})).await;
    assert_eq!(missing, 400);

    // A dropped connection: no answer at all, then normal service.
    sim.inject_drop("sendMessage", 1);
    let dropped = reqwest::Client::new()
        .post(format!("{}/bot{TOKEN}/sendMessage", sim.url()))
        .json(&json!({"chat_id": 42, "text": "x"}))
        .send()
        .await;
    assert!(dropped.is_err(), "the connection was closed without a response");
    // An outage: 502 with the envelope, then normal service.
    sim.inject_error("sendMessage", TgError::server(502), 1);
    let (down, body) = call(&sim, "sendMessage", json!({"chat_id": 42, "text": "x"})).await;
    assert_eq!((down, body["ok"].clone()), (502, json!(false)));
    let (up, _) = call(&sim, "sendMessage", json!({"chat_id": 42, "text": "x"})).await;
    assert_eq!(up, 200);
}
