//! Outgoing messages: a queue and one sender task, so Telegram being slow or down never blocks
//! a rotation. Alerts wait in the queue and go out, in order, when Telegram is back.
//!
//! 429 waits exactly `retry_after` and resends; network errors and 5xx back off with jitter up
//! to a minute; a message rejected as unparsable markup is resent as plain text; other 4xx
//! (chat not found, bot blocked) are logged and counted, and the message is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use frankenstein::methods::{AnswerCallbackQueryParams, SendMessageParams};
use frankenstein::types::{InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, ReplyMarkup};
use tokio::sync::mpsc;
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

/// The queue's sending side; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: Option<mpsc::UnboundedSender<Outgoing>>,
    /// Messages that could not be delivered, for `/metrics`.
    pub failures: Arc<AtomicU64>,
}

impl Outbox {
    /// A queue and its receiving end, for [`run_sender`].
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Outgoing>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx: Some(tx), failures: Arc::default() }, rx)
    }

    /// An outbox that drops everything (no Telegram configured).
    pub fn disabled() -> Self {
        Self { tx: None, failures: Arc::default() }
    }

    /// Whether messages go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues `html` for `chat`.
    pub fn message(&self, chat: i64, html: impl Into<String>, buttons: Vec<Button>) {
        self.push(Outgoing::Message { chat, html: html.into(), buttons });
    }

    /// Queues a callback answer.
    pub fn answer(&self, id: &str, text: Option<String>, alert: bool) {
        self.push(Outgoing::CallbackAnswer { id: id.to_string(), text, alert });
    }

    fn push(&self, item: Outgoing) {
        if let Some(tx) = &self.tx
            && tx.send(item).is_err()
        {
            tracing::debug!("outbox closed; message dropped during shutdown");
        }
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
pub async fn run_sender(
    client: BotClient,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    outbox: Outbox,
    shutdown: CancellationToken,
) {
    loop {
        let item = tokio::select! {
            _ = shutdown.cancelled() => return,
            item = rx.recv() => match item { Some(i) => i, None => return },
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
