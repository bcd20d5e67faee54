//! Outgoing messages: a queue and one sender task, so Telegram being slow or down never blocks
//! a rotation. Alerts wait in the queue and go out, in order, when Telegram is back.
//!
//! 429 waits exactly `retry_after` and resends; network errors and 5xx back off with jitter up
//! to a minute; a message rejected as unparsable markup is resent as plain text; other 4xx
//! (chat not found, bot blocked) are logged and counted, and the message is dropped.
//!
//! The queue is bounded and has two lanes: alerts, replies and button answers go first; notices
//! about strangers (anyone can write to a bot) go only when nothing else waits, at most
//! [`LOW_CAP`] of them are queued, and they are the first dropped when the queue is full. So a
//! flood of unknown chats can never delay an expiry alert or the admin's `/status`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use frankenstein::methods::{AnswerCallbackQueryParams, SendMessageParams};
use frankenstein::types::{InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, ReplyMarkup};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::client::{BotClient, TgError};
use super::html;

/// A button under a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Button {
    /// Presses come back as a callback query with this data.
    Callback {
        /// Label.
        label: String,
        /// Callback data.
        data: String,
    },
    /// Opens a link.
    Link {
        /// Label.
        label: String,
        /// Target.
        url: String,
    },
}

/// What the sender can be asked to do.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A message (HTML) to a chat, split if too long; buttons go under the last part.
    Message {
        /// Chat id.
        chat: i64,
        /// HTML text, already escaped.
        html: String,
        /// One row of buttons.
        buttons: Vec<Button>,
    },
    /// The answer to a button press (a toast or, with `alert`, a dialog).
    CallbackAnswer {
        /// Callback query id.
        id: String,
        /// Text shown.
        text: Option<String>,
        /// Show as a dialog the user must dismiss.
        alert: bool,
    },
}

/// The most alerts and replies kept waiting; beyond it the oldest is dropped (and logged).
pub const HIGH_CAP: usize = 1000;
/// The most stranger notices kept waiting; beyond it new ones are dropped.
pub const LOW_CAP: usize = 20;

#[derive(Debug, Default)]
struct Lanes {
    high: VecDeque<Outgoing>,
    low: VecDeque<Outgoing>,
}

#[derive(Debug, Default)]
struct Shared {
    lanes: Mutex<Lanes>,
    ready: Notify,
}

impl Shared {
    fn lanes(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The queue's sending side; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    shared: Option<Arc<Shared>>,
    /// Messages that could not be delivered, for `/metrics`.
    pub failures: Arc<AtomicU64>,
    /// Messages dropped because the queue was full.
    pub dropped: Arc<AtomicU64>,
}

/// The queue's receiving side, for [`run_sender`].
#[derive(Debug)]
pub struct Receiver {
    shared: Arc<Shared>,
}

impl Receiver {
    /// The next item: alerts and replies before stranger notices.
    pub async fn recv(&mut self) -> Outgoing {
        loop {
            let ready = self.shared.ready.notified();
            {
                let mut lanes = self.shared.lanes();
                if let Some(item) = lanes.high.pop_front().or_else(|| lanes.low.pop_front()) {
                    return item;
                }
            }
            ready.await;
        }
    }
}

impl Outbox {
    /// A queue and its receiving end, for [`run_sender`].
    pub fn new() -> (Self, Receiver) {
        let shared = Arc::new(Shared::default());
        let rx = Receiver { shared: Arc::clone(&shared) };
        (Self { shared: Some(shared), failures: Arc::default(), dropped: Arc::default() }, rx)
    }

    /// An outbox that drops everything (no Telegram configured).
    pub fn disabled() -> Self {
        Self { shared: None, failures: Arc::default(), dropped: Arc::default() }
    }

    /// Whether messages go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// Queues `html` for `chat`.
    pub fn message(&self, chat: i64, html: impl Into<String>, buttons: Vec<Button>) {
        self.push(Outgoing::Message { chat, html: html.into(), buttons }, false);
    }

    /// Queues a notice that may wait behind everything else and may be dropped when the queue is
    /// full (what strangers cause).
    pub fn notice(&self, chat: i64, html: impl Into<String>) {
        self.push(Outgoing::Message { chat, html: html.into(), buttons: vec![] }, true);
    }

    /// Queues a callback answer.
    pub fn answer(&self, id: &str, text: Option<String>, alert: bool) {
        self.push(Outgoing::CallbackAnswer { id: id.to_string(), text, alert }, false);
    }

    /// Items waiting, (alerts and replies, stranger notices).
    pub fn queued(&self) -> (usize, usize) {
        self.shared.as_ref().map_or((0, 0), |s| {
            let lanes = s.lanes();
            (lanes.high.len(), lanes.low.len())
        })
    }

    fn push(&self, item: Outgoing, low: bool) {
        let Some(shared) = &self.shared else { return };
        let dropped = {
            let mut lanes = shared.lanes();
            if low {
                if lanes.low.len() >= LOW_CAP {
                    true
                } else {
                    lanes.low.push_back(item);
                    false
                }
            } else {
                lanes.high.push_back(item);
                if lanes.high.len() + lanes.low.len() > HIGH_CAP {
                    // Stranger notices go first; only then the oldest alert or reply.
                    if lanes.low.pop_front().is_none() {
                        lanes.high.pop_front();
                    }
                    true
                } else {
                    false
                }
            }
        };
        if dropped {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_multiple_of(100) {
                tracing::warn!(dropped = n, "the Telegram queue is full; dropped a message (stranger notices first)");
            }
        }
        shared.ready.notify_one();
    }
}

fn markup(buttons: &[Button]) -> Option<ReplyMarkup> {
    if buttons.is_empty() {
        return None;
    }
    let row = buttons
        .iter()
        .map(|b| match b {
            Button::Callback { label, data } => {
                InlineKeyboardButton::builder().text(label.clone()).callback_data(data.clone()).build()
            }
            Button::Link { label, url } => InlineKeyboardButton::builder().text(label.clone()).url(url.clone()).build(),
        })
        .collect();
    Some(ReplyMarkup::InlineKeyboardMarkup(InlineKeyboardMarkup::builder().inline_keyboard(vec![row]).build()))
}

/// Sends queued items one at a time, in order, until `shutdown`.
pub async fn run_sender(client: BotClient, mut rx: Receiver, outbox: Outbox, shutdown: CancellationToken) {
    loop {
        let item = tokio::select! {
            _ = shutdown.cancelled() => return,
            item = rx.recv() => item,
        };
        match item {
            Outgoing::Message { chat, html, buttons } => {
                // Telegram refuses empty text, so blank parts (runs of empty lines) are skipped.
                let parts: Vec<String> =
                    html::split(&html, html::MAX_MESSAGE).into_iter().filter(|p| !p.trim().is_empty()).collect();
                let last = parts.len().saturating_sub(1);
                for (i, part) in parts.into_iter().enumerate() {
                    let buttons = if i == last { buttons.as_slice() } else { &[] };
                    if !deliver(&client, chat, &part, buttons, &outbox, &shutdown).await {
                        break;
                    }
                }
            }
            Outgoing::CallbackAnswer { id, text, alert } => {
                let params = AnswerCallbackQueryParams::builder()
                    .callback_query_id(id)
                    .maybe_text(text)
                    .show_alert(alert)
                    .build();
                // A callback answer is only useful within seconds, so it is not retried.
                if let Err(e) = client.answer_callback_query(&params).await {
                    tracing::warn!(error = %e, "could not answer a button press");
                }
            }
        }
    }
}

/// Sends one message, retrying transient failures until it goes or shutdown; false if dropped.
async fn deliver(
    client: &BotClient,
    chat: i64,
    part: &str,
    buttons: &[Button],
    outbox: &Outbox,
    shutdown: &CancellationToken,
) -> bool {
    let mut plain = false;
    let mut failures = 0u32;
    loop {
        let text = if plain { html::to_plain(part) } else { part.to_string() };
        let mut params = SendMessageParams::builder()
            .chat_id(chat)
            .text(text)
            .link_preview_options(LinkPreviewOptions::builder().is_disabled(true).build())
            .maybe_reply_markup(markup(buttons))
            .build();
        if !plain {
            params.parse_mode = Some(frankenstein::ParseMode::Html);
        }
        let wait = match client.send_message(&params).await {
            Ok(_) => return true,
            Err(e) if e.is_parse_error() && !plain => {
                tracing::error!(error = %e, "Telegram could not parse a message; resending it as plain text");
                plain = true;
                continue;
            }
            Err(e) if e.is_transient() => {
                failures += 1;
                outbox.failures.fetch_add(1, Ordering::Relaxed);
                let wait = e.retry_after().unwrap_or_else(|| retry_delay(failures));
                tracing::warn!(error = %e, retry_in = ?wait, "message not sent yet; it stays queued");
                wait
            }
            Err(e) => {
                outbox.failures.fetch_add(1, Ordering::Relaxed);
                log_final(&e, chat);
                return false;
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn log_final(e: &TgError, chat: i64) {
    tracing::error!(error = %e, chat, "message dropped; check telegram_chat_id / admin_chat_id and that the chat has started the bot");
}

/// Back-off for Telegram calls: 1 s doubling to 60 s, with 50–100 % jitter.
pub fn retry_delay(failures: u32) -> Duration {
    crate::policy::backoff_between(failures, fastrand::f64(), Duration::from_secs(1), Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_of(o: &Outgoing) -> i64 {
        match o {
            Outgoing::Message { chat, .. } => *chat,
            Outgoing::CallbackAnswer { .. } => 0,
        }
    }

    #[tokio::test]
    async fn replies_overtake_notices_and_notices_are_capped_and_dropped_first() {
        let (outbox, mut rx) = Outbox::new();
        for i in 0..100 {
            outbox.notice(i, "stranger");
        }
        assert_eq!(outbox.queued(), (0, LOW_CAP));
        outbox.message(7, "status", vec![]);
        assert_eq!(chat_of(&rx.recv().await), 7, "the reply goes first");
        for i in 0..HIGH_CAP {
            outbox.message(1000 + i as i64, "alert", vec![]);
        }
        let (high, low) = outbox.queued();
        assert_eq!(high, HIGH_CAP);
        assert_eq!(low, 0, "notices were dropped before any alert");
        assert!(outbox.dropped.load(Ordering::Relaxed) >= 80);
    }
}
