//! The Telegram conversation: who may say what, and what the bot answers.
//!
//! Authorization comes first and is decided by chat id alone: the alert chat and the admin chat
//! may read; only the admin chat may change anything (`/refresh`, `/pause`, `/resume`, pastes,
//! buttons). Any other chat gets no answer and causes no Dhan call; the attempt is logged with
//! its chat id, and the admin hears about it at most once per chat per hour, and about at most
//! [`STRANGERS_TOLD`] chats one by one per hour: beyond that, a digest at most every
//! [`DIGEST_EVERY`] counts the rest. Those notices wait behind alerts and replies in the outbox.

mod parse;
mod strangers;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

pub use parse::{COMMANDS, Command, help_text};
pub use strangers::{DIGEST_EVERY, STRANGERS_TOLD};
use strangers::{Notice, Strangers};

use crate::account;
use crate::alerts;
use crate::config::Mode;
use crate::ist;
use crate::lifecycle::{Keeper, RotateError};
use crate::paste::{self, Paste};
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
    keeper: Arc<Keeper>,
    outbox: Outbox,
    username: String,
    strangers: Mutex<Strangers>,
}

impl Bot {
    /// A bot for `keeper`, known to Telegram as `@username`.
    pub fn new(keeper: Arc<Keeper>, outbox: Outbox, username: String) -> Self {
        Self { keeper, outbox, username, strangers: Mutex::new(Strangers::default()) }
    }

    /// The role of a chat.
    pub fn role(&self, chat: i64) -> Role {
        let cfg = self.keeper.config();
        if cfg.admin_chat_id == Some(chat) {
            Role::Admin
        } else if cfg.telegram_chat_id == Some(chat) {
            Role::Viewer
        } else {
            Role::Stranger
        }
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
            Some(c) => self.command(chat, c).await,
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
        let now = self.keeper.now();
        let notice = self.strangers.lock().unwrap_or_else(|e| e.into_inner()).on_message(chat, now);
        let Some(admin) = self.keeper.config().admin_chat_id else { return };
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

    async fn command(&self, chat: i64, c: Command) {
        match c {
            Command::Start => self.reply(chat, replies::start_text(&self.keeper.view())),
            Command::Status => self.reply(chat, self.status_text()),
            Command::Help => self.reply(chat, help_text()),
            Command::Account => self.account(chat).await,
            Command::Calendar => self.reply(chat, self.calendar_text()),
            Command::Refresh => self.refresh(chat).await,
            Command::Pause => {
                self.keeper.set_paused(true);
                self.reply(
                    chat,
                    "⏸ Paused: no automatic rotation and no alerts until /resume (this survives restarts).",
                );
            }
            Command::Resume => {
                self.keeper.set_paused(false);
                self.reply(chat, "▶️ Resumed: automatic rotation and alerts are back on.");
            }
            Command::Unknown(name) => {
                self.reply(chat, format!("I don't know /{}. Send /help for the list.", escape(&name)));
            }
        }
    }

    /// The `/status` text.
    pub fn status_text(&self) -> String {
        replies::status_text(&self.keeper.view())
    }

    /// The `/calendar` text: the next five sessions and the next holiday of the configured
    /// segments.
    pub fn calendar_text(&self) -> String {
        let k = &self.keeper;
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

    async fn account(&self, chat: i64) {
        match self.keeper.account().await {
            None => self.reply(chat, "⛔ No valid token, so Dhan cannot be asked. Send /refresh first."),
            Some(Ok((f, h, p))) => {
                let blocks: Vec<String> = account::summary(&f, &h, &p, 10).iter().map(|b| escape(b)).collect();
                self.reply(chat, blocks.join("\n\n"));
            }
            Some(Err(e)) => self.reply(chat, format!("❌ Could not read the account: {}", escape(&e.to_string()))),
        }
    }

    async fn refresh(&self, chat: i64) {
        let k = &self.keeper;
        match k.config().mode() {
            Mode::Automatic => {
                // Checked before "Getting a new token…" so a refusal is the only reply; `rotate`
                // checks again (Dhan's own refusal can still come back as the same error).
                if let Some(until) = k.cooldown_until(k.now()) {
                    self.reply(chat, self.cooldown_text(until));
                    return;
                }
                if let Some(stop) = k.credential_stop() {
                    self.reply(
                        chat,
                        format!(
                            "🔐 Dhan refused the credentials at {} ({}). Trying once more as you asked…",
                            ist::human(&stop.at),
                            escape(&stop.message)
                        ),
                    );
                }
                self.reply(chat, "🔄 Getting a new token…");
                match k.rotate("/refresh", crate::gate::Asker::Admin).await {
                    Ok(t) if Some(chat) != k.alert_chat() => self.reply(chat, alerts::rotated(&t, k.now())),
                    Ok(_) => {} // the confirmation went to this chat already
                    Err(RotateError::Cooldown { until, .. }) => self.reply(chat, self.cooldown_text(until)),
                    Err(e) => self.reply(chat, format!("❌ No new token: {}", escape(&e.to_string()))),
                }
            }
            Mode::Consent => self.send_login(chat).await,
        }
    }

    fn cooldown_text(&self, until: DateTime<Utc>) -> String {
        let k = &self.keeper;
        let mut s = format!(
            "⏳ Dhan allows one new token every {} counted from the last attempt. Try again in {} (after {}).",
            humantime::format_duration(k.config().mint_cooldown),
            ist::human_duration(until - k.now()),
            ist::to_ist(&until).format("%H:%M:%S IST")
        );
        // A wait must never hide a credential error.
        if let Some(stop) = k.credential_stop() {
            s.push_str(&format!(
                "\n🔐 The last attempt failed because Dhan refused the credentials ({}): fix <code>pin</code>, \
                 <code>totp_secret</code> or <code>client_id</code> first.",
                escape(&stop.message)
            ));
        }
        s
    }

    async fn send_login(&self, chat: i64) {
        let k = &self.keeper;
        match k.login_url().await {
            Ok(url) => {
                let mut text = "🔗 <b>Log in to Dhan to get a new token</b>".to_string();
                if let Some(code) = k.totp_now() {
                    text.push_str(&format!(
                        "\nTOTP code now: <code>{}</code> ({} s left; tap 🔢 for a fresh one)",
                        code.digits, code.secs_left
                    ));
                }
                text.push_str(&alerts::login_instructions(&url));
                self.outbox.message(chat, text, alerts::login_buttons(Some(&url), k.config().totp_secret.is_some()));
            }
            Err(e) => self.reply(chat, format!("❌ Dhan did not give a login link: {}", escape(&e.to_string()))),
        }
    }

    async fn paste(&self, chat: i64, text: &str) {
        let k = &self.keeper;
        let result = match paste::classify(text) {
            Paste::TokenId(id) => {
                self.reply(chat, "🔑 Got a tokenId; asking Dhan for the token…");
                k.consume_token_id(&id).await
            }
            Paste::AccessToken(t) => {
                self.reply(chat, "🔑 Got an access token; checking it with Dhan…");
                k.install_pasted(t).await
            }
            Paste::UrlWithoutTokenId => {
                self.reply(
                    chat,
                    "That link has no tokenId. Paste the address of the page you land on <i>after</i> logging in; it \
                     contains <code>?tokenId=…</code>.",
                );
                return;
            }
            Paste::Unrecognised => {
                self.reply(
                    chat,
                    "❌ Nothing was stored: that is not a login address, a tokenId or an access token. I expected the \
                     address you land on after logging in (with <code>tokenId=</code>), a tokenId, or an access token. \
                     Send /help for commands.",
                );
                return;
            }
        };
        match result {
            Ok(t) if Some(chat) != k.alert_chat() => self.reply(chat, alerts::rotated(&t, k.now())),
            Ok(_) => {}
            Err(e) => self.reply(chat, format!("❌ Nothing was stored: {}", escape(&paste_error(&e)))),
        }
    }

    async fn on_callback(&self, q: &CallbackQuery) {
        let chat = q.message.as_ref().map_or(q.from.id, |m| m.chat.id);
        let k = &self.keeper;
        if self.role(chat) != Role::Admin {
            if self.role(chat) == Role::Stranger {
                self.stranger(chat, Some(q.from.id), "a button press");
            } else {
                self.outbox.answer(&q.id, Some("Only the admin chat can do that.".into()), false);
            }
            return;
        }
        match q.data.as_deref() {
            Some(alerts::CB_TOTP) => match k.totp_now() {
                Some(code) => {
                    self.outbox.answer(&q.id, Some(format!("TOTP {} — {} s left", code.digits, code.secs_left)), true);
                }
                None => self.outbox.answer(&q.id, Some("No totp_secret in the config.".into()), true),
            },
            Some(alerts::CB_REFRESH) => {
                self.outbox.answer(&q.id, Some("On it…".into()), false);
                self.refresh(chat).await;
            }
            _ => self.outbox.answer(&q.id, Some("That button is no longer used.".into()), false),
        }
    }
}

fn paste_error(e: &RotateError) -> String {
    match e {
        RotateError::Dhan(crate::dhan::DhanError::AuthFailed { .. }) => {
            "Dhan rejects that token (expired, replaced by a newer one, or not a Dhan token).".into()
        }
        other => other.to_string(),
    }
}
