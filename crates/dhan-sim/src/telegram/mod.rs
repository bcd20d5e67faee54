//! A stateful fake of the Telegram Bot API on 127.0.0.1, for dhan-keeper's bot tests.
//!
//! Routes `/bot<token>/<method>` with case-insensitive method names, merges query and JSON/form
//! bodies, answers in the `{ok, ...}` envelope with the HTTP status equal to `error_code`, and
//! keeps real long-poll semantics: offsets confirm updates, a parked poll wakes on injection, and
//! a second poll kicks the first with 409.

mod state;
mod text;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub use state::{CallbackAnswer, TgError, TgState};

/// Longest long poll the server allows (the local Bot API server's cap).
pub const MAX_POLL_SECS: u64 = 50;

struct Shared {
    state: Mutex<TgState>,
    notify: Notify,
    /// Woken whenever the bot's message is recorded.
    sent_notify: Notify,
    /// Message `date`s come from here, like the Dhan simulator's timestamps.
    clock: crate::clock::SimClock,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, TgState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn unix_now(&self) -> i64 {
        self.clock.now().timestamp()
    }
}

/// A running fake Telegram. Dropping it stops the server.
pub struct TelegramSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    cancel: CancellationToken,
}

impl TelegramSim {
    /// Starts on `127.0.0.1:0` for the bot `token` (`<bot_id>:<secret>`).
    pub async fn start(token: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(TgState::new(token)),
            notify: Notify::new(),
            sent_notify: Notify::new(),
            clock: crate::clock::SimClock::default(),
        });
        let listener = crate::server::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let app = Router::new().route("/{bot}/{method}", any(dispatch)).fallback(not_found).with_state(shared.clone());
        let drops = shared.clone();
        tokio::spawn(crate::server::serve_fn(listener, cancel.clone(), move |req: Request<Incoming>| {
            let (app, shared) = (app.clone(), drops.clone());
            async move {
                let method = req.uri().path().rsplit('/').next().unwrap_or_default().to_ascii_lowercase();
                if shared.lock().take_drop(&method) {
                    return Err(std::io::Error::other("injected connection drop"));
                }
                Ok(app.oneshot(req.map(axum::body::Body::new)).await.unwrap_or_else(|never| match never {}))
            }
        }));
        Ok(Self { shared, addr, cancel })
    }

    /// `http://127.0.0.1:PORT`, for `telegram_api_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A user writes `text` in `chat`. Returns the update id.
    pub fn inject_text(&self, chat: i64, user: i64, text: &str) -> i64 {
        let id = self.shared.lock().inject_text(chat, user, text, self.shared.unix_now());
        self.shared.notify.notify_waiters();
        id
    }

    /// A user presses a button with `data` on the bot's message `message_id`. Returns the
    /// callback query id, or `None` when no such message was sent.
    pub fn inject_callback(&self, chat: i64, user: i64, message_id: i64, data: &str) -> Option<String> {
        let id = self.shared.lock().inject_callback(chat, user, message_id, data);
        self.shared.notify.notify_waiters();
        id
    }

    /// Makes `chat` known, so messages to it are accepted before it has written.
    pub fn add_chat(&self, chat: i64) {
        self.shared.lock().chats.insert(chat);
    }

    /// The messages the bot sent to `chat`.
    pub fn sent(&self, chat: i64) -> Vec<Value> {
        self.shared.lock().sent.get(&chat).cloned().unwrap_or_default()
    }

    /// The methods called so far, lower-cased.
    pub fn calls(&self) -> Vec<String> {
        self.shared.lock().calls.iter().map(|(m, _)| m.clone()).collect()
    }

    /// How many long polls are parked right now, waiting for an update: tests wait on this
    /// instead of sleeping before they inject.
    pub fn parked_polls(&self) -> usize {
        self.shared.lock().parked
    }

    /// The registered command list.
    pub fn commands(&self) -> Value {
        self.shared.lock().commands.clone()
    }

    /// Queues any update as given (an `update_id` is added), e.g. a `channel_post` or an
    /// `edited_message`. Returns the update id.
    pub fn inject_update(&self, update: Value) -> i64 {
        let id = self.shared.lock().push_raw(update);
        self.shared.notify.notify_waiters();
        id
    }

    /// Numbers the next injected update `id` (and counts up from there, stopping at
    /// `i64::MAX`), to test a client at the top of the id range.
    pub fn set_next_update_id(&self, id: i64) {
        self.shared.lock().next_update_id = id;
    }

    /// Closes the connection without an answer on the next `count` calls of `method` (any case,
    /// or `*`): what a client sees when a proxy or the network drops a request.
    pub fn inject_drop(&self, method: &str, count: usize) {
        *self.shared.lock().drops.entry(method.to_ascii_lowercase()).or_default() += count;
    }

    /// Every message the bot sent, to any chat, as `(chat, message)`.
    pub fn all_sent(&self) -> Vec<(i64, Value)> {
        let st = self.shared.lock();
        st.sent.iter().flat_map(|(c, msgs)| msgs.iter().map(move |m| (*c, m.clone()))).collect()
    }

    /// Every call with its arrival time (real wall clock), in order.
    pub fn call_log(&self) -> Vec<(String, std::time::SystemTime)> {
        self.shared.lock().calls.clone()
    }

    /// Waits until at least `count` messages were sent to `chat`; false on `timeout`.
    pub async fn wait_sent(&self, chat: i64, count: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.sent_notify.notified();
            if self.shared.lock().sent.get(&chat).map_or(0, Vec::len) >= count {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Every answer the bot gave to a button press, in order.
    pub fn callback_answers(&self) -> Vec<state::CallbackAnswer> {
        self.shared.lock().answers.clone()
    }

    /// Fails the next `count` calls of `method` (any case, or `*`) with `error`.
    pub fn inject_error(&self, method: &str, error: TgError, count: usize) {
        let mut st = self.shared.lock();
        let q = st.faults.entry(method.to_ascii_lowercase()).or_default();
        q.extend(std::iter::repeat_n(error, count));
    }
}

impl Drop for TelegramSim {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn envelope(result: Result<Value, TgError>) -> Response {
    match result {
        Ok(v) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], json!({"ok": true, "result": v}).to_string())
                .into_response()
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_REQUEST);
            let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], e.body().to_string()).into_response();
            if let Some(s) = e.retry_after.and_then(|s| s.to_string().parse().ok()) {
                resp.headers_mut().insert(header::RETRY_AFTER, s);
            }
            resp
        }
    }
}

async fn not_found() -> Response {
    envelope(Err(TgError { code: 404, description: "Not Found".into(), retry_after: None }))
}

/// Query parameters merged with a JSON or form body; non-string JSON values kept as JSON.
fn params(query: HashMap<String, String>, headers: &HeaderMap, body: &Bytes) -> HashMap<String, Value> {
    let mut out: HashMap<String, Value> = query.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ctype.contains("application/x-www-form-urlencoded") {
        for (k, v) in url::form_urlencoded::parse(body) {
            out.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    } else if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        out.extend(map);
    }
    out
}

/// A parameter as an object: nested JSON, or a JSON-encoded string.
fn object_param(p: &HashMap<String, Value>, key: &str) -> Option<Value> {
    match p.get(key)? {
        Value::String(s) => serde_json::from_str(s).ok(),
        other => Some(other.clone()),
    }
}

fn int_param(p: &HashMap<String, Value>, key: &str) -> Option<i64> {
    match p.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

async fn dispatch(
    State(s): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = bot.strip_prefix("bot") else { return not_found().await };
    let method = method.to_ascii_lowercase();
    {
        let mut st = s.lock();
        if token != st.token {
            return envelope(Err(TgError { code: 401, description: "Unauthorized".into(), retry_after: None }));
        }
        st.record_call(&method);
        if let Some(e) = st.take_fault(&method) {
            return envelope(Err(e));
        }
    }
    let p = params(query, &headers, &body);
    envelope(match method.as_str() {
        "getme" => Ok(s.lock().me()),
        "getupdates" => return get_updates(s, p).await,
        "sendmessage" => send_message(&s, &p),
        "setmycommands" => match object_param(&p, "commands") {
            Some(Value::Array(list)) => {
                s.lock().commands = Value::Array(list);
                Ok(Value::Bool(true))
            }
            Some(_) => Err(TgError::bad_request("expected an Array of BotCommand")),
            None => Err(TgError::bad_request("can't parse commands JSON object")),
        },
        "getmycommands" => Ok(s.lock().commands.clone()),
        "deletewebhook" => Ok(Value::Bool(true)),
        "getwebhookinfo" => Ok(json!({"url": "", "has_custom_certificate": false, "pending_update_count": 0})),
        "answercallbackquery" => {
            let id = p.get("callback_query_id").and_then(Value::as_str).unwrap_or_default().to_string();
            let text = p.get("text").and_then(Value::as_str).map(str::to_string);
            let show_alert = p.get("show_alert").is_some_and(|v| v == &Value::Bool(true) || v == "true");
            if text.as_ref().is_some_and(|t| t.chars().count() > 200) {
                return envelope(Err(TgError::bad_request("MESSAGE_TOO_LONG")));
            }
            if s.lock().answer_callback(&id, text, show_alert) {
                Ok(Value::Bool(true))
            } else {
                Err(TgError::bad_request("query is too old and response timeout expired or query ID is invalid"))
            }
        }
        "editmessagetext" => edit_message_text(&s, &p),
        _ => Err(TgError { code: 404, description: "Not Found: method not found".into(), retry_after: None }),
    })
}

fn edit_message_text(s: &Shared, p: &HashMap<String, Value>) -> Result<Value, TgError> {
    let Some(chat) = int_param(p, "chat_id") else { return Err(TgError::bad_request("chat_id is empty")) };
    let Some(message_id) = int_param(p, "message_id") else {
        return Err(TgError::bad_request("message identifier is not specified"));
    };
    let raw = p.get("text").and_then(Value::as_str).unwrap_or_default();
    if raw.trim().is_empty() {
        return Err(TgError::bad_request("message text is empty"));
    }
    let plain = parse_text(raw, p)?;
    let markup = object_param(p, "reply_markup");
    s.lock().edit_text(chat, message_id, &plain, markup)
}

/// The text a reader sees, after the message's `parse_mode` is applied.
fn parse_text(raw: &str, p: &HashMap<String, Value>) -> Result<String, TgError> {
    let mode = p.get("parse_mode").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
    match mode.as_str() {
        "" | "none" | "markdown" => Ok(raw.to_string()),
        "html" => text::parse_html(raw).map_err(|e| TgError::bad_request(&format!("can't parse entities: {e}"))),
        "markdownv2" => {
            text::parse_markdown_v2(raw).map_err(|e| TgError::bad_request(&format!("can't parse entities: {e}")))
        }
        _ => Err(TgError::bad_request("unsupported parse_mode")),
    }
}

async fn get_updates(s: Arc<Shared>, p: HashMap<String, Value>) -> Response {
    let offset = int_param(&p, "offset").unwrap_or(0);
    let limit = int_param(&p, "limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = int_param(&p, "timeout").unwrap_or(0).clamp(0, MAX_POLL_SECS as i64) as u64;
    let generation = {
        let mut st = s.lock();
        st.poll_generation += 1;
        st.poll_generation
    };
    // Wake any earlier parked poll so it can notice it was superseded.
    s.notify.notify_waiters();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let mut parked: Option<Parked> = None;
    loop {
        let notified = s.notify.notified();
        {
            let mut st = s.lock();
            if st.poll_generation != generation {
                return envelope(Err(TgError {
                    code: 409,
                    description: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running".into(),
                    retry_after: None,
                }));
            }
            let updates = st.take_updates(offset, limit);
            if !updates.is_empty() || timeout == 0 {
                return envelope(Ok(Value::Array(updates)));
            }
            if parked.is_none() {
                st.parked += 1;
                parked = Some(Parked(s.clone()));
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return envelope(Ok(json!([])));
        }
    }
}

/// Counts a parked long poll for as long as it waits, including when the client hangs up.
struct Parked(Arc<Shared>);

impl Drop for Parked {
    fn drop(&mut self) {
        self.0.lock().parked -= 1;
    }
}

fn send_message(s: &Shared, p: &HashMap<String, Value>) -> Result<Value, TgError> {
    let Some(chat) = int_param(p, "chat_id") else { return Err(TgError::bad_request("chat_id is empty")) };
    let raw = p.get("text").and_then(Value::as_str).unwrap_or_default();
    if raw.trim().is_empty() {
        return Err(TgError::bad_request("message text is empty"));
    }
    if raw.len() > 1 << 15 {
        return Err(TgError::bad_request("text is too long"));
    }
    let plain = parse_text(raw, p)?;
    let markup = object_param(p, "reply_markup");
    if p.contains_key("reply_markup") && !markup.as_ref().is_some_and(Value::is_object) {
        return Err(TgError::bad_request("object expected as reply markup"));
    }
    let mut st = s.lock();
    if !st.chats.contains(&chat) {
        return Err(TgError::bad_request("chat not found"));
    }
    if plain.chars().count() > 4096 {
        return Err(TgError::bad_request("message is too long"));
    }
    let message = st.record_sent(chat, &plain, markup, s.unix_now());
    drop(st);
    s.sent_notify.notify_waiters();
    Ok(message)
}
