//! dhan-keeper keeps a Dhan (DhanHQ) API access token alive and hands it to trading programs.
//!
//! # Layout
//! - [`config`]: `dhan_config.json` + `DHAN_KEEPER_*` env + `*_file` secrets, validated once.
//! - [`secret`]: the redacting wrapper every credential lives in.
//! - [`clock`]: the one place that reads the wall clock.
//! - [`ist`]: Dhan's naive IST timestamps and how we show times to a trader.
//! - [`totp`]: RFC 6238 codes.
//! - [`dhan`]: the HTTP client for Dhan's auth and api hosts, with typed errors.
//! - [`mint`]: TOTP + PIN minting with the window-edge retry; [`gate`]: Dhan's mint window and the
//!   credential stop, pure.
//! - [`calendar`]: exchange sessions, holidays and special sessions per segment (embedded data).
//! - [`policy`]: when to rotate (market-aware), alert and back off; pure, no clock reads.
//! - [`planner`]: what the keeper does next and when, from a snapshot of its state; pure.
//! - [`token`]: the token, its atomic 0600 file, and the single-instance lock.
//! - [`account`]: funds, holdings and positions as short text for a trader.
//! - [`cli`]: the one-shot subcommands (`check`, `status`, `token`, `refresh`, `totp`).
//! - [`lifecycle`]: the [`lifecycle::Keeper`] that owns the token, and the loop that follows the policy.
//! - [`state`]: what the daemon remembers across restarts (paused, Telegram offset, alerts sent).
//! - [`telegram`]: Bot API client, long polling, the outgoing queue.
//! - [`commands`]: the conversation: authorization, commands, the paste flow ([`paste`]).
//! - [`alerts`]: the unprompted messages (expiry ladder, confirmations, failures).
//! - [`hook`]: the `on_refresh` command; [`serve`]: the loopback HTTP endpoint; [`metrics`].
//! - [`events`]: `GET /events`, a Server-Sent Events stream announcing each new token.
//! - [`fleet`]: several keepers, one token: the Redis lease, the sealed shared record, followers.
//! - [`app`]: `run` wires all of the above together.
//! - [`telemetry`]: logging to stderr.
#![warn(missing_docs)]

pub mod account;
pub mod alerts;
pub mod app;
pub mod calendar;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod dhan;
pub mod events;
pub mod fleet;
pub mod gate;
pub mod harden;
pub mod hook;
pub mod ist;
pub mod lifecycle;
pub mod metrics;
pub mod mint;
pub mod paste;
pub mod planner;
pub mod policy;
#[cfg(test)]
mod proptests;
pub mod secret;
pub mod serve;
pub mod state;
pub mod telegram;
pub mod telemetry;
pub mod token;
pub mod totp;
mod transport;
mod watch;
