//! Telegram: a thin Bot API client ([`client`]), the long-polling loop ([`poller`]), the
//! outgoing queue that keeps alerts through outages ([`outbox`]) and HTML helpers ([`html`]).
//!
//! What the bot *says* lives in [`crate::commands`] and [`crate::alerts`]; this module only moves
//! messages. Request types are `frankenstein`'s, incoming updates are decoded by [`types`];
//! every behaviour (backoff, 429, offsets) is ours.

pub mod client;
pub mod html;
pub mod outbox;
pub mod poller;
pub mod types;

pub use client::{BotClient, TgError};
pub use outbox::{Button, Outbox};
