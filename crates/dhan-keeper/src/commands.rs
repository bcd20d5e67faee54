//! The Telegram conversation: who may say what, and what the bot answers.
//!
//! Authorization comes first and is decided by chat id alone: the alert chat and the admin chat
//! may read; only the admin chat may change anything (`/refresh`, `/pause`, `/resume`, pastes,
//! buttons). Any other chat gets no answer and causes no Dhan call; the attempt is logged with
//! its chat id, and the admin hears about it at most once per chat per hour, and about at most
//! [`STRANGERS_TOLD`] chats one by one per hour: beyond that, a digest at most every
//! [`DIGEST_EVERY`] counts the rest. Those notices wait behind alerts and replies in the outbox.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::account;
use crate::alerts;
use crate::config::Mode;
use crate::ist;
use crate::lifecycle::{Keeper, RotateError};
use crate::paste::{self, Paste};
use crate::telegram::html::escape;
use crate::telegram::types::{CallbackQuery, Message, Update};

/// The command list registered with `setMyCommands`, also the body of `/help`.
pub const COMMANDS: &[(&str, &str)] = &[
    ("start", "Bot and token overview"),
    ("status", "Token validity, expiry (IST), next rotation and alert"),
    ("refresh", "Get a new token now (admin)"),
    ("account", "Funds, holdings and positions"),
    ("calendar", "Next five sessions and the next holiday (IST)"),
    ("pause", "Stop automatic rotation and alerts (admin)"),
    ("resume", "Restart automatic rotation and alerts (admin)"),
    ("help", "This list"),
];

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/start`.
    Start,
    /// `/status`.
    Status,
    /// `/refresh`.
    Refresh,
    /// `/account`.
    Account,
    /// `/help`.
    Help,
    /// `/pause`.
    Pause,
    /// `/resume`.
    Resume,
    /// `/calendar`.
    Calendar,
    /// Anything else that starts with `/` (its name, at most 32 characters).
    Unknown(String),
}

impl Command {
    /// Parses `/cmd`, `/cmd@botname` (the name compared without case) and ignores commands
    /// addressed to another bot (`None`). Text that is not a command is `None` as well.
    pub fn parse(text: &str, bot_username: &str) -> Option<Command> {
        let word = text.split_whitespace().next()?;
        let body = word.strip_prefix('/')?;
        let (name, target) = match body.split_once('@') {
            Some((n, t)) => (n, Some(t)),
            None => (body, None),
        };
        if target.is_some_and(|t| !t.eq_ignore_ascii_case(bot_username)) {
            return None;
        }
        Some(match name.to_ascii_lowercase().as_str() {
            "start" => Command::Start,
            "status" => Command::Status,
            "refresh" => Command::Refresh,
            "account" => Command::Account,
            "help" => Command::Help,
            "pause" => Command::Pause,
            "resume" => Command::Resume,
            "calendar" => Command::Calendar,
            // Kept short: it is echoed in the reply and logged for strangers.
            other => Command::Unknown(other.chars().take(32).collect()),
        })
    }

    fn admin_only(&self) -> bool {
        matches!(self, Command::Refresh | Command::Pause | Command::Resume)
    }
}

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
    username: String,
    strangers: Mutex<Strangers>,
}

/// Unknown chats named to the admin one by one per hour; beyond that, digests.
pub const STRANGERS_TOLD: u32 = 3;
/// The shortest gap between two digests of further unknown chats.
pub const DIGEST_EVERY: chrono::Duration = chrono::Duration::minutes(10);
/// Unknown chats remembered at once (older than the hour are forgotten first).
const STRANGERS_KEPT: usize = 10_000;

/// What to tell the admin about a stranger.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Notice {
    /// This chat, by itself.
    One,
    /// `count` unknown chats since the last notice, some of their ids.
    Digest { count: u32, ids: Vec<i64> },
}

/// Which unknown chats were seen, and how much the admin was told this hour.
#[derive(Debug, Default)]
struct Strangers {
    seen: HashMap<i64, DateTime<Utc>>,
    window: Option<DateTime<Utc>>,
    told: u32,
    held: u32,
    held_ids: Vec<i64>,
    last_digest: Option<DateTime<Utc>>,
    last_prune: Option<DateTime<Utc>>,
}

impl Strangers {
    /// Records `chat` writing at `now`; says what (if anything) the admin should hear.
    fn on_message(&mut self, chat: i64, now: DateTime<Utc>) -> Option<Notice> {
        let hour = chrono::Duration::hours(1);
        // Forget notices older than the hour, so a flood of new chat ids cannot grow this; once a
        // minute (or when full) rather than on every message, which would cost O(n) each.
        if self.last_prune.is_none_or(|t| now - t >= chrono::Duration::minutes(1)) || self.seen.len() >= STRANGERS_KEPT
        {
            self.seen.retain(|_, t| now - *t < hour);
            self.last_prune = Some(now);
        }
        if self.seen.get(&chat).is_some_and(|t| now - *t < hour) || self.seen.len() >= STRANGERS_KEPT {
            return None;
        }
        self.seen.insert(chat, now);
        if self.window.is_none_or(|w| now - w >= hour) {
            self.window = Some(now);
            self.told = 0;
        }
        if self.told < STRANGERS_TOLD {
            self.told += 1;
            return Some(Notice::One);
        }
        self.held += 1;
        if self.held_ids.len() < 5 {
            self.held_ids.push(chat);
        }
        if self.last_digest.is_some_and(|t| now - t < DIGEST_EVERY) {
            return None;
        }
        self.last_digest = Some(now);
        let count = std::mem::take(&mut self.held);
        Some(Notice::Digest { count, ids: std::mem::take(&mut self.held_ids) })
    }
}

impl Bot {
    /// A bot for `keeper`, known to Telegram as `@username`.
    pub fn new(keeper: Arc<Keeper>, username: String) -> Self {
        Self { keeper, username, strangers: Mutex::new(Strangers::default()) }
    }

    /// The role of a chat.
    pub fn role(&self, chat: i64) -> Role {
        let cfg = &self.keeper.cfg;
        if cfg.admin_chat_id == Some(chat) {
            Role::Admin
        } else if cfg.telegram_chat_id == Some(chat) {
            Role::Viewer
        } else {
            Role::Stranger
        }
    }

    fn reply(&self, chat: i64, html: impl Into<String>) {
        self.keeper.outbox.message(chat, html, vec![]);
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
        let now = self.keeper.clock.now();
        let notice = self.strangers.lock().unwrap_or_else(|e| e.into_inner()).on_message(chat, now);
        let Some(admin) = self.keeper.cfg.admin_chat_id else { return };
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
        self.keeper.outbox.notice(admin, html);
    }

    async fn command(&self, chat: i64, c: Command) {
        match c {
            Command::Start => self.reply(chat, self.start_text()),
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

    fn token_line(&self, now: DateTime<Utc>) -> String {
        let k = &self.keeper;
        match (k.token(), k.live().revoked) {
            (None, _) => "⛔ no token".into(),
            (Some(_), true) => "🚫 revoked by Dhan (a newer token was generated elsewhere)".into(),
            (Some(t), false) if t.is_expired(now) => format!("⛔ expired at {}", ist::human(&t.expires_at)),
            (Some(t), false) => {
                let left = t.remaining(now);
                let mark = if left < chrono::Duration::from_std(k.cfg.alert_before).unwrap_or_default() {
                    "🟡"
                } else {
                    "🟢"
                };
                format!("{mark} valid, {} left", ist::human_duration(left))
            }
        }
    }

    fn start_text(&self) -> String {
        let k = &self.keeper;
        let now = k.clock.now();
        let paused = if k.state.get().paused { "⏸ paused (/resume)" } else { "▶️ active" };
        format!(
            "👋 <b>dhan-keeper</b> v{}\nMode: {}\nToken: {}\nRotation and alerts: {paused}\nClient: <code>{}</code>\n\nSend /help for commands.",
            env!("CARGO_PKG_VERSION"),
            escape(&k.cfg.mode().to_string()),
            self.token_line(now),
            escape(&k.cfg.client_id),
        )
    }

    /// The `/status` text.
    pub fn status_text(&self) -> String {
        let k = &self.keeper;
        let now = k.clock.now();
        let live = k.live();
        let state = k.state.get();
        let mut s = format!("<b>Token</b>: {}", self.token_line(now));
        if let Some(t) = k.token() {
            s.push_str(&format!("\nExpires: {}", ist::human(&t.expires_at)));
            let source = t.source.map(|x| x.to_string()).unwrap_or_else(|| "unknown (older file)".into());
            match t.obtained_at {
                Some(at) => s.push_str(&format!("\nSource: {} · obtained {}", escape(&source), ist::human(&at))),
                None => s.push_str(&format!("\nSource: {}", escape(&source))),
            }
        }
        match &state.last_attempt {
            Some(a) => s.push_str(&format!(
                "\nLast refresh: {} {} — {}",
                if a.ok { "✅" } else { "❌" },
                ist::human(&a.at),
                escape(&a.what)
            )),
            None => s.push_str("\nLast refresh: none since this daemon started keeping state"),
        }
        if live.failures > 0 {
            s.push_str(&format!("\nFailures in a row: {}", live.failures));
        }
        if let Some(sus) = &live.suspect {
            s.push_str(&format!(
                "\n🔎 Dhan rejected the token {}× ({}); re-checking before replacing it",
                sus.rejections,
                escape(&sus.message)
            ));
        }
        if let Some(stop) = crate::gate::credential_stop(&state, &k.cfg.credentials_id()) {
            s.push_str(&format!(
                "\n🔐 Automatic minting stopped: Dhan refused the credentials at {} ({}). Fix the config or press /refresh.",
                ist::human(&stop.at),
                escape(&stop.message)
            ));
        }
        if live.unsaved {
            s.push_str("\n💾 Token file: cannot be written; the token is kept in memory and retried");
        }
        if state.paused {
            s.push_str("\nNext rotation: ⏸ paused (/resume)");
        } else {
            match (k.cfg.mode(), live.next_rotation) {
                (_, Some(t)) => s.push_str(&format!("\nNext rotation: {}", when(t, now))),
                (Mode::Consent, None) => s.push_str("\nNext rotation: by you, through the login link (consent mode)"),
                (Mode::Automatic, None) => s.push_str("\nNext rotation: being planned"),
            }
            if let Some(t) = live.next_alert {
                s.push_str(&format!("\nNext alert: {}", when(t, now)));
            }
        }
        if let Some(crate::config::MarketChoice::Segments(segs)) = k.cfg.market_hours {
            let next = crate::calendar::next_session_line(&k.cfg.calendar, segs, now);
            s.push_str(&format!("\nNext session: {}", escape(&next)));
        }
        s.push_str(match live.dhan_reachable {
            Some(true) => "\nDhan: ✅ reachable",
            Some(false) => "\nDhan: ⚠️ not answering",
            None => "\nDhan: not checked yet",
        });
        match &live.ip {
            Some(Ok(ip)) if ip.orders_refused() => s.push_str(&format!("\nStatic IP: ⚠️ {}", escape(&ip.summary()))),
            Some(Ok(ip)) => s.push_str(&format!("\nStatic IP: ✅ {}", escape(&ip.summary()))),
            Some(Err(e)) => s.push_str(&format!("\nStatic IP: not known ({})", escape(e))),
            None => s.push_str("\nStatic IP: not checked yet"),
        }
        s
    }

    /// The `/calendar` text: the next five sessions and the next holiday of the configured
    /// segments.
    pub fn calendar_text(&self) -> String {
        let k = &self.keeper;
        let now = k.clock.now();
        let segs = k.cfg.calendar_segments();
        let cal = &k.cfg.calendar;
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
        let k = &self.keeper;
        if k.usable_token().is_none() {
            self.reply(chat, "⛔ No valid token, so Dhan cannot be asked. Send /refresh first.");
            return;
        }
        match k.account().await {
            Ok((f, h, p)) => {
                let blocks: Vec<String> = account::summary(&f, &h, &p, 10).iter().map(|b| escape(b)).collect();
                self.reply(chat, blocks.join("\n\n"));
            }
            Err(e) => self.reply(chat, format!("❌ Could not read the account: {}", escape(&e.to_string()))),
        }
    }

    async fn refresh(&self, chat: i64) {
        let k = &self.keeper;
        match k.cfg.mode() {
            Mode::Automatic => {
                // Checked before "Getting a new token…" so a refusal is the only reply; `rotate`
                // checks again (Dhan's own refusal can still come back as the same error).
                if let Some(until) = k.cooldown_until(k.clock.now()) {
                    self.reply(chat, self.cooldown_text(until));
                    return;
                }
                if let Some(stop) = crate::gate::credential_stop(&k.state.get(), &k.cfg.credentials_id()) {
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
                    Ok(t) if Some(chat) != k.alert_chat() => self.reply(chat, alerts::rotated(&t, k.clock.now())),
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
            humantime::format_duration(k.cfg.mint_cooldown),
            ist::human_duration(until - k.clock.now()),
            ist::to_ist(&until).format("%H:%M:%S IST")
        );
        // A wait must never hide a credential error.
        if let Some(stop) = crate::gate::credential_stop(&k.state.get(), &k.cfg.credentials_id()) {
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
                if let Some(totp) = &k.cfg.totp_secret {
                    let code = totp.code_at(k.clock.now());
                    text.push_str(&format!(
                        "\nTOTP code now: <code>{}</code> ({} s left; tap 🔢 for a fresh one)",
                        code.digits, code.secs_left
                    ));
                }
                text.push_str(&alerts::login_instructions(&url));
                k.outbox.message(chat, text, alerts::login_buttons(Some(&url), k.cfg.totp_secret.is_some()));
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
            Ok(t) if Some(chat) != k.alert_chat() => self.reply(chat, alerts::rotated(&t, k.clock.now())),
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
                k.outbox.answer(&q.id, Some("Only the admin chat can do that.".into()), false);
            }
            return;
        }
        match q.data.as_deref() {
            Some(alerts::CB_TOTP) => match &k.cfg.totp_secret {
                Some(totp) => {
                    let code = totp.code_at(k.clock.now());
                    k.outbox.answer(&q.id, Some(format!("TOTP {} — {} s left", code.digits, code.secs_left)), true);
                }
                None => k.outbox.answer(&q.id, Some("No totp_secret in the config.".into()), true),
            },
            Some(alerts::CB_REFRESH) => {
                k.outbox.answer(&q.id, Some("On it…".into()), false);
                self.refresh(chat).await;
            }
            _ => k.outbox.answer(&q.id, Some("That button is no longer used.".into()), false),
        }
    }
}

/// `Thu 26 Nov 08:45 IST (in 23h 10m)`, or `now`.
fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if t <= now {
        return "now".into();
    }
    format!("{} (in {})", ist::human(&ist::to_ist(&t)), ist::human_duration(t - now))
}

fn paste_error(e: &RotateError) -> String {
    match e {
        RotateError::Dhan(crate::dhan::DhanError::AuthFailed { .. }) => {
            "Dhan rejects that token (expired, replaced by a newer one, or not a Dhan token).".into()
        }
        other => other.to_string(),
    }
}

/// The `/help` text.
pub fn help_text() -> String {
    let mut s = "<b>Commands</b>".to_string();
    for (c, d) in COMMANDS {
        s.push_str(&format!("\n/{c} — {}", escape(d)));
    }
    s.push_str(
        "\n\nIn the admin chat you can also paste the address you land on after the Dhan login, a tokenId, or an \
         access token.",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_and_without_the_bot_name() {
        assert_eq!(Command::parse("/status", "DhanBot"), Some(Command::Status));
        assert_eq!(Command::parse("/status@DhanBot", "DhanBot"), Some(Command::Status));
        assert_eq!(Command::parse("/Status@dhanbot now", "DhanBot"), Some(Command::Status));
        assert_eq!(Command::parse("/status@OtherBot", "DhanBot"), None);
        assert_eq!(Command::parse("/frobnicate", "DhanBot"), Some(Command::Unknown("frobnicate".into())));
        assert_eq!(Command::parse("hello", "DhanBot"), None);
        assert_eq!(Command::parse("", "DhanBot"), None);
    }

    #[test]
    fn help_lists_every_command() {
        let h = help_text();
        for (c, _) in COMMANDS {
            assert!(h.contains(&format!("/{c} ")), "{c} missing from help");
        }
    }

    #[test]
    fn stranger_notices_are_capped_then_digested() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-25T10:00:00+05:30").expect("valid").with_timezone(&Utc);
        let m = chrono::Duration::minutes;
        let mut st = Strangers::default();
        let mut notices = Vec::new();
        for i in 0..2000 {
            notices.extend(st.on_message(1_000 + i, t0));
        }
        assert_eq!(
            notices,
            vec![Notice::One, Notice::One, Notice::One, Notice::Digest { count: 1, ids: vec![1_003] }],
            "2,000 chats at once: three named, one digest"
        );
        assert_eq!(st.on_message(1_000, t0 + m(5)), None, "a chat already named is not named again within the hour");
        assert_eq!(st.on_message(5_000, t0 + m(9)), None, "digests are at least ten minutes apart");
        match st.on_message(5_001, t0 + m(10)) {
            Some(Notice::Digest { count, ids }) => {
                assert_eq!(count, 1998, "every held chat is counted");
                assert_eq!(ids.len(), 5);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(st.on_message(6_000, t0 + m(61)), Some(Notice::One), "a new hour names chats again");
        assert!(st.seen.len() <= STRANGERS_KEPT);
    }
}
