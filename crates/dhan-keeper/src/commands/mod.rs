//! The Telegram conversation: who may say what, and what the bot answers.
//!
//! Authorization comes first and is decided by chat id alone: the alert chat and the admin chat
//! may read; only the admin chat may change anything (`/refresh`, `/pause`, `/resume`, pastes,
//! buttons). Any other chat gets no answer and causes no Dhan call; the attempt is logged with
//! its chat id, and the admin hears about it at most once per chat per hour, and about at most
//! [`STRANGERS_TOLD`] chats one by one per hour: beyond that, a digest at most every
//! [`DIGEST_EVERY`] counts the rest. Those notices wait behind alerts and replies in the outbox.

mod act;
mod parse;
mod strangers;
mod which;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

pub use parse::{COMMANDS, Command, argument, help_text};
pub use strangers::{DIGEST_EVERY, STRANGERS_TOLD};
use strangers::{Notice, Strangers};

use crate::alerts;
use crate::ist;
use crate::lifecycle::{Keeper, Keepers};
use crate::replies;
use crate::telegram::Outbox;
use crate::telegram::html::escape;
use crate::telegram::types::{CallbackQuery, Message, Update};

/// Who is talking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `admin_chat_id`: everything.
    Admin,
    /// `telegram_chat_id` when it is not the admin chat: read-only.
    Viewer,
    /// Anyone else: nothing.
    Stranger,
}

/// The bot: parses updates, checks who sent them, answers.
#[derive(Debug)]
pub struct Bot {
    keepers: Keepers,
    outbox: Outbox,
    username: String,
    strangers: Mutex<Strangers>,
    which: Mutex<which::Pending>,
}

impl Bot {
    /// A bot for every account in `keepers`, known to Telegram as `@username`.
    pub fn new(keepers: Keepers, outbox: Outbox, username: String) -> Self {
        Self {
            keepers,
            outbox,
            username,
            strangers: Mutex::new(Strangers::default()),
            which: Mutex::new(which::Pending::default()),
        }
    }

    /// The role of a chat: the shared chats first, then an account's own chat (read-only, and
    /// only about its accounts).
    pub fn role(&self, chat: i64) -> Role {
        let cfg = self.keepers.shared();
        if cfg.admin_chat_id == Some(chat) {
            Role::Admin
        } else if cfg.telegram_chat_id == Some(chat) || !self.keepers.of_chat(chat).is_empty() {
            Role::Viewer
        } else {
            Role::Stranger
        }
    }

    /// The keepers a chat may hear about: every account for the shared chats, its own for an
    /// account's chat.
    fn visible(&self, chat: i64) -> Vec<Arc<Keeper>> {
        let cfg = self.keepers.shared();
        if cfg.admin_chat_id == Some(chat) || cfg.telegram_chat_id == Some(chat) {
            self.keepers.all().to_vec()
        } else {
            self.keepers.of_chat(chat).into_iter().cloned().collect()
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.keepers.first().now()
    }

    fn reply(&self, chat: i64, html: impl Into<String>) {
        self.outbox.message(chat, html, vec![]);
    }

    /// Handles one update. Never panics on input; every failure becomes a reply or a log line.
    pub async fn handle(&self, update: Update) {
        if let Some(m) = &update.message {
            self.on_message(m).await;
        } else if let Some(q) = &update.callback_query {
            self.on_callback(q).await;
        }
    }

    async fn on_message(&self, m: &Message) {
        let chat = m.chat.id;
        let Some(text) = m.text.as_deref() else { return };
        let command = Command::parse(text, &self.username);
        let arg = argument(text);
        let force = parse::forced(text);
        if text.trim_start().starts_with('/') && command.is_none() {
            return; // a command for another bot in a group
        }
        let role = self.role(chat);
        tracing::debug!(chat, ?role, ?command, "message");
        if role == Role::Stranger {
            let what = match &command {
                Some(c) => format!("{c:?}").to_lowercase(),
                None => "a message".into(),
            };
            self.stranger(chat, m.from.as_ref().map(|u| u.id), &what);
            return;
        }
        match command {
            Some(c) if c.admin_only() && role != Role::Admin => {
                self.reply(chat, "🔒 Only the admin chat can do that.");
            }
            Some(c) => self.command(chat, c, arg.as_deref(), force).await,
            None if role == Role::Admin => self.paste(chat, text).await,
            None => self.reply(chat, "🔒 Only the admin chat can paste tokens. Send /help for commands."),
        }
    }

    /// Logs a stranger and tells the admin at most once per chat per hour.
    fn stranger(&self, chat: i64, user: Option<i64>, what: &str) {
        tracing::warn!(
            chat,
            user,
            what,
            "ignored a Telegram chat that is not configured; if that is you, put this chat id in telegram_chat_id / \
             admin_chat_id"
        );
        let now = self.now();
        let notice = self.strangers.lock().unwrap_or_else(|e| e.into_inner()).on_message(chat, now);
        let Some(admin) = self.keepers.shared().admin_chat_id else { return };
        let html = match notice {
            None => return,
            Some(Notice::One) => format!(
                "🚫 An unknown chat (id <code>{chat}</code>) sent {}. It got no answer. If that was you, add this id to the config.",
                escape(what)
            ),
            Some(Notice::Digest { count, ids }) => {
                let ids = ids.iter().map(|i| format!("<code>{i}</code>")).collect::<Vec<_>>().join(", ");
                format!(
                    "🚫 {count} more unknown chat{} wrote to the bot (ids {ids}{}). None got an answer; the log has every id. \
                     Further ones are summed up at most every {} minutes.",
                    if count == 1 { "" } else { "s" },
                    if count > 5 { ", …" } else { "" },
                    DIGEST_EVERY.num_minutes()
                )
            }
        };
        self.outbox.notice(admin, html);
    }

    async fn command(&self, chat: i64, c: Command, arg: Option<&str>, force: bool) {
        match c {
            Command::Start => self.reply(chat, self.start_text(chat)),
            Command::Status => match arg {
                None => self.reply(chat, self.status_for(chat)),
                Some(_) => match self.pick(chat, arg) {
                    Ok(k) => self.reply(chat, k.tagged(&replies::status_text(&k.view()))),
                    Err(e) => self.reply(chat, e),
                },
            },
            Command::Help => self.reply(chat, self.help(chat)),
            Command::Account => self.on_account(chat, arg, which::Act::Account).await,
            Command::Calendar => self.reply(chat, self.calendar_text()),
            Command::Refresh => self.on_account(chat, arg, which::Act::Refresh { force }).await,
            Command::Pause => self.set_paused(chat, arg, true),
            Command::Resume => self.set_paused(chat, arg, false),
            Command::Unknown(name) => {
                self.reply(chat, format!("I don't know /{}. Send /help for the list.", escape(&name)));
            }
        }
    }

    /// `/pause` and `/resume`: one account when labelled, else every account.
    fn set_paused(&self, chat: i64, arg: Option<&str>, paused: bool) {
        let targets = match arg {
            Some(_) => match self.pick(chat, arg) {
                Ok(k) => vec![k],
                Err(e) => return self.reply(chat, e),
            },
            None => self.keepers.all().to_vec(),
        };
        for k in &targets {
            k.set_paused(paused);
        }
        let text = if paused {
            "⏸ Paused: no automatic rotation and no alerts until /resume (this survives restarts)."
        } else {
            "▶️ Resumed: automatic rotation and alerts are back on."
        };
        match (arg, self.keepers.several()) {
            (Some(_), _) => self.reply(chat, targets[0].tagged(text)),
            (None, true) => {
                self.reply(chat, format!("{text}\n(All accounts: {}.)", escape(&self.keepers.label_list())))
            }
            (None, false) => self.reply(chat, text),
        }
    }

    /// The `/status` text a chat gets without a label: the one account in full, or one compact
    /// block per account it may see, worst first.
    pub fn status_for(&self, chat: i64) -> String {
        let visible = self.visible(chat);
        match visible.as_slice() {
            [only] => only.tagged(&replies::status_text(&only.view())),
            many => replies::status_many(&crate::lifecycle::views(many)),
        }
    }

    fn start_text(&self, chat: i64) -> String {
        let visible = self.visible(chat);
        match visible.as_slice() {
            [only] if only.label().is_none() => replies::start_text(&only.view()),
            many => replies::start_many(&crate::lifecycle::views(many)),
        }
    }

    fn help(&self, chat: i64) -> String {
        let mut s = help_text();
        let visible = self.visible(chat);
        let labels = crate::lifecycle::labels(&visible).join(", ");
        if self.keepers.several() && !labels.is_empty() {
            let example = visible.iter().find_map(|k| k.label().map(|l| l.to_string())).unwrap_or_default();
            s.push_str(&format!(
                "\n\nAccounts: {}. Name one after a command (<code>/status {}</code>); without a name /status shows \
                 all, /pause and /resume act on all, and /refresh and /account ask which.",
                escape(&labels),
                escape(&example)
            ));
        }
        s
    }

    /// The `/calendar` text: the next five sessions and the next holiday of the configured
    /// segments.
    pub fn calendar_text(&self) -> String {
        let k = self.keepers.first();
        let now = k.now();
        let segs = k.config().calendar_segments();
        let cal = &k.config().calendar;
        let mut s = format!("📅 <b>Next sessions</b> ({})", escape(&segs.to_string()));
        for session in cal.upcoming(now, segs, 5) {
            s.push_str(&format!("\n• {}", escape(&crate::calendar::describe(&session))));
        }
        let today = ist::to_ist(&now).date_naive();
        match cal.next_holiday(today, segs) {
            Some(h) => s.push_str(&format!(
                "\n<b>Next holiday</b>: {} {} — {}",
                h.segment,
                h.date.format("%a %d %b %Y"),
                escape(&h.name)
            )),
            None => s.push_str("\n<b>Next holiday</b>: none known in the next year"),
        }
        if let Some((_, notice)) = crate::calendar::end_notice(cal, segs, today) {
            s.push_str(&format!("\n⚠️ {}", escape(&notice)));
        }
        s
    }

    async fn on_callback(&self, q: &CallbackQuery) {
        let chat = q.message.as_ref().map_or(q.from.id, |m| m.chat.id);
        let data = q.data.as_deref().unwrap_or_default();
        let (what, label) = match data.split_once(':') {
            Some((w, l)) => (w, Some(l)),
            None => (data, None),
        };
        // Reading an account (`/account`'s buttons) is for every chat that may see it; the rest
        // is the admin's.
        let reads = what == which::CB_ACCOUNT;
        match self.role(chat) {
            Role::Admin => {}
            Role::Viewer if reads => {}
            Role::Viewer => return self.outbox.answer(&q.id, Some("Only the admin chat can do that.".into()), false),
            Role::Stranger => return self.stranger(chat, Some(q.from.id), "a button press"),
        }
        // `paste:LABEL:N` carries the number of the question it answers.
        let (label, number) = match label.and_then(|l| l.split_once(':')) {
            Some((l, n)) => (Some(l), Some(n)),
            None => (label, None),
        };
        let keeper = match self.pick(chat, label) {
            Ok(k) => k,
            Err(e) => return self.outbox.answer(&q.id, Some(strip_tags(&e)), true),
        };
        match what {
            alerts::CB_TOTP => match keeper.totp_now() {
                Some(code) => {
                    self.outbox.answer(&q.id, Some(format!("TOTP {} — {} s left", code.digits, code.secs_left)), true);
                }
                None => self.outbox.answer(&q.id, Some("No totp_secret in the config.".into()), true),
            },
            alerts::CB_REFRESH => {
                self.outbox.answer(&q.id, Some("On it…".into()), false);
                self.refresh(chat, &keeper, false).await;
            }
            which::CB_ACCOUNT => {
                self.outbox.answer(&q.id, None, false);
                self.account(chat, &keeper).await;
            }
            which::CB_PASTE => {
                self.outbox.answer(&q.id, None, false);
                self.paste_held(chat, &keeper, number).await;
            }
            _ => self.outbox.answer(&q.id, Some("That button is no longer used.".into()), false),
        }
    }
}

/// A reply's text without its HTML tags, for a callback's pop-up (plain text).
fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in html.chars() {
        match c {
            '<' => inside = true,
            '>' => inside = false,
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
}
