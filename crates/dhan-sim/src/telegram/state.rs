//! The fake Bot API's state: the update queue with offset confirmation, parked long polls, sent
//! messages per chat, registered commands, issued callback ids and pending faults.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Value, json};

/// An error reply: HTTP status = `error_code`, Telegram's description, optional retry_after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TgError {
    /// HTTP status and `error_code`.
    pub code: u16,
    /// `description`.
    pub description: String,
    /// `parameters.retry_after` (and the `Retry-After` header) for 429.
    pub retry_after: Option<u64>,
}

impl TgError {
    /// 400 `Bad Request: {what}`.
    pub fn bad_request(what: &str) -> Self {
        Self { code: 400, description: format!("Bad Request: {what}"), retry_after: None }
    }

    /// 429 with `retry_after`.
    pub fn flood(secs: u64) -> Self {
        Self { code: 429, description: format!("Too Many Requests: retry after {secs}"), retry_after: Some(secs) }
    }

    /// A 5xx such as 502 `Bad Gateway`, as the Bot API's front end returns in an outage.
    pub fn server(code: u16) -> Self {
        let what = match code {
            500 => "Internal Server Error",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => "Server Error",
        };
        Self { code, description: what.into(), retry_after: None }
    }

    /// The JSON envelope.
    pub fn body(&self) -> Value {
        let mut v = json!({"ok": false, "error_code": self.code, "description": self.description});
        if let Some(s) = self.retry_after {
            v["parameters"] = json!({"retry_after": s});
        }
        v
    }
}

/// How the bot answered a button press.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackAnswer {
    /// The callback query id.
    pub id: String,
    /// The toast or dialog text.
    pub text: Option<String>,
    /// Shown as a dialog.
    pub show_alert: bool,
}

/// Everything the fake Telegram remembers.
#[derive(Debug)]
pub struct TgState {
    /// `<bot_id>:<secret>`.
    pub token: String,
    /// The bot's numeric id.
    pub bot_id: i64,
    /// The bot's username.
    pub username: String,
    pub(crate) updates: VecDeque<(i64, Value)>,
    pub(crate) next_update_id: i64,
    /// Bumped by each long poll; a parked poll that sees a newer one answers 409.
    pub(crate) poll_generation: u64,
    /// Long polls currently waiting for an update.
    pub(crate) parked: usize,
    pub(crate) next_message_id: HashMap<i64, i64>,
    /// Messages the bot sent, per chat.
    pub sent: HashMap<i64, Vec<Value>>,
    /// Chats that exist (have written to the bot, or were registered by a test).
    pub chats: HashSet<i64>,
    /// The last `setMyCommands` list.
    pub commands: Value,
    pub(crate) callback_ids: HashSet<String>,
    /// Every answered button press, in order.
    pub answers: Vec<CallbackAnswer>,
    pub(crate) faults: HashMap<String, VecDeque<TgError>>,
    /// Connections to drop, per method (lower case) or `*`.
    pub(crate) drops: HashMap<String, usize>,
    /// Every method called, lower-cased, in order, with its arrival time (real wall clock).
    pub calls: Vec<(String, std::time::SystemTime)>,
}

impl TgState {
    /// Fresh state for `token` (`<bot_id>:<secret>`).
    pub fn new(token: &str) -> Self {
        let bot_id = token.split(':').next().and_then(|s| s.parse().ok()).unwrap_or(7_000_000_001);
        Self {
            token: token.to_string(),
            bot_id,
            username: "dhan_token_bot".into(),
            updates: VecDeque::new(),
            next_update_id: 100_000_001,
            poll_generation: 0,
            parked: 0,
            next_message_id: HashMap::new(),
            sent: HashMap::new(),
            chats: HashSet::new(),
            commands: json!([]),
            callback_ids: HashSet::new(),
            answers: Vec::new(),
            faults: HashMap::new(),
            drops: HashMap::new(),
            calls: Vec::new(),
        }
    }

    /// The bot as a `User`.
    pub fn me(&self) -> Value {
        json!({"id": self.bot_id, "is_bot": true, "first_name": "Dhan Token Bot", "username": self.username,
               "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false,
               "can_connect_to_business": false, "has_main_web_app": false})
    }

    fn chat(id: i64) -> Value {
        if id < 0 {
            json!({"id": id, "title": "Group", "type": if id < -1_000_000_000_000 { "supergroup" } else { "group" }})
        } else {
            json!({"id": id, "first_name": "Trader", "type": "private"})
        }
    }

    /// Queues an arbitrary update.
    pub fn push_raw(&mut self, update: Value) -> i64 {
        self.push_update(update)
    }

    fn push_update(&mut self, mut update: Value) -> i64 {
        let id = self.next_update_id;
        self.next_update_id = self.next_update_id.saturating_add(1);
        update["update_id"] = json!(id);
        self.updates.push_back((id, update));
        id
    }

    /// Queues a text message from `user` in `chat`, with `bot_command`/`url` entities as a real
    /// client adds them (offsets in UTF-16 units). Returns the update id.
    pub fn inject_text(&mut self, chat: i64, user: i64, text: &str, date: i64) -> i64 {
        self.chats.insert(chat);
        let message_id = self.bump_message_id(chat);
        let mut entities = Vec::new();
        let mut offset = 0usize;
        for word in text.split(' ') {
            let len = word.encode_utf16().count();
            if offset == 0 && word.starts_with('/') && len > 1 {
                entities.push(json!({"offset": 0, "length": len, "type": "bot_command"}));
            } else if word.starts_with("http://") || word.starts_with("https://") {
                entities.push(json!({"offset": offset, "length": len, "type": "url"}));
            }
            offset += len + 1;
        }
        let mut message = json!({
            "message_id": message_id,
            "from": {"id": user, "is_bot": false, "first_name": "Trader"},
            "chat": Self::chat(chat),
            "date": date,
            "text": text,
        });
        if !entities.is_empty() {
            message["entities"] = Value::Array(entities);
        }
        self.push_update(json!({"message": message}))
    }

    /// Queues a button press on the bot's message `message_id` in `chat`.
    pub fn inject_callback(&mut self, chat: i64, user: i64, message_id: i64, data: &str) -> Option<String> {
        let message = self.sent.get(&chat)?.iter().find(|m| m["message_id"] == json!(message_id))?.clone();
        let id = format!("{:016x}", fastrand::u64(..));
        self.callback_ids.insert(id.clone());
        self.push_update(json!({"callback_query": {
            "id": id, "from": {"id": user, "is_bot": false, "first_name": "Trader"},
            "message": message, "chat_instance": "-5234567890123456789", "data": data
        }}));
        Some(id)
    }

    fn bump_message_id(&mut self, chat: i64) -> i64 {
        let n = self.next_message_id.entry(chat).or_insert(0);
        *n += 1;
        *n
    }

    /// Confirms updates below `offset` and returns up to `limit` of the rest.
    pub fn take_updates(&mut self, offset: i64, limit: usize) -> Vec<Value> {
        if offset > 0 {
            self.updates.retain(|(id, _)| *id >= offset);
        } else if offset < 0 {
            let keep = offset.unsigned_abs() as usize;
            while self.updates.len() > keep {
                self.updates.pop_front();
            }
        }
        self.updates.iter().take(limit.clamp(1, 100)).map(|(_, u)| u.clone()).collect()
    }

    /// Stores a message the bot sent and returns it as Telegram echoes it.
    pub fn record_sent(&mut self, chat: i64, text: &str, reply_markup: Option<Value>, date: i64) -> Value {
        let message_id = self.bump_message_id(chat);
        let mut m = json!({"message_id": message_id, "from": {"id": self.bot_id, "is_bot": true,
            "first_name": "Dhan Token Bot", "username": self.username}, "chat": Self::chat(chat), "date": date, "text": text});
        if let Some(markup) = reply_markup {
            m["reply_markup"] = markup;
        }
        self.sent.entry(chat).or_default().push(m.clone());
        m
    }

    /// Notes a call of `method` (lower case) and when it arrived (real wall clock).
    pub fn record_call(&mut self, method: &str) {
        self.calls.push((method.to_string(), crate::clock::real_now()));
    }

    /// Whether the next call of `method` should be dropped (and counts it as called).
    pub fn take_drop(&mut self, method: &str) -> bool {
        for key in [method, "*"] {
            if let Some(n) = self.drops.get_mut(key).filter(|n| **n > 0) {
                *n -= 1;
                self.record_call(method);
                return true;
            }
        }
        false
    }

    /// Takes the next injected fault for `method` (lower case) or `*`.
    pub fn take_fault(&mut self, method: &str) -> Option<TgError> {
        if let Some(f) = self.faults.get_mut(method).and_then(VecDeque::pop_front) {
            return Some(f);
        }
        self.faults.get_mut("*").and_then(VecDeque::pop_front)
    }

    /// Whether `id` was issued in a callback query (and consumes it); records the answer.
    pub fn answer_callback(&mut self, id: &str, text: Option<String>, show_alert: bool) -> bool {
        let ok = self.callback_ids.remove(id);
        if ok {
            self.answers.push(CallbackAnswer { id: id.to_string(), text, show_alert });
        }
        ok
    }

    /// Replaces the text of a message the bot sent.
    pub fn edit_text(
        &mut self,
        chat: i64,
        message_id: i64,
        text: &str,
        reply_markup: Option<Value>,
    ) -> Result<Value, TgError> {
        let Some(m) =
            self.sent.get_mut(&chat).and_then(|list| list.iter_mut().find(|m| m["message_id"] == json!(message_id)))
        else {
            return Err(TgError::bad_request("message to edit not found"));
        };
        if m["text"] == json!(text) && reply_markup.is_none() {
            return Err(TgError::bad_request(
                "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
            ));
        }
        m["text"] = json!(text);
        m["edit_date"] = m["date"].clone();
        match reply_markup {
            Some(r) => m["reply_markup"] = r,
            None => {
                if let Some(o) = m.as_object_mut() {
                    o.remove("reply_markup");
                }
            }
        }
        Ok(m.clone())
    }
}
