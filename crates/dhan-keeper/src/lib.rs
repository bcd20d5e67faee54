//! dhan-keeper keeps a Dhan (DhanHQ) API access token alive and hands it to trading programs.
//!
//! # Layout, by area (each layer uses only the ones above it)
//!
//! **Leaf types**: [`clock`] (the one place that reads the wall clock), [`ist`] (Dhan's naive IST
//! times), [`secret`] (the redacting wrapper every credential lives in), [`totp`] (RFC 6238),
//! [`config`] (file + `DHAN_KEEPER_*` env + `*_file` secrets, validated once), [`calendar`]
//! (exchange sessions per segment, embedded data).
//!
//! **Dhan**: [`dhan`] (the client for the auth and api hosts, typed errors, the code table, JWT
//! claims), [`mint`] (TOTP + PIN with the window-edge retry).
//!
//! **Token lifecycle**: [`token`] (the token, its atomic file, the single-instance lock),
//! [`state`] (what survives restarts), [`gate`] (Dhan's mint window and the credential stop,
//! pure), [`policy`] (when to rotate and alert, market-aware, pure), [`planner`] (what to do
//! next, from a snapshot, pure), [`lifecycle`] (the [`lifecycle::Keeper`]: intents, the loop, the
//! consistent [`lifecycle::View`]; [`lifecycle::Keepers`], one keeper per account of a family
//! config), [`hook`] (`on_refresh`), [`events`] (the `/events` hub), [`metrics`], [`fleet`]
//! (several hosts, one token: the Redis lease, the sealed shared record, followers; the keeper
//! asks it before every mint).
//!
//! **Conversation**: [`telegram`] (Bot API client, long polling, the outbox), [`commands`]
//! (authorization and commands), [`paste`], [`replies`] (`/status`, `/start`, `/healthz` as
//! pure functions of a view), [`alerts`] (the unprompted messages), [`account`].
//!
//! **Edges**: [`app`] (`run` wires it all and owns the tasks), [`serve`] (the loopback HTTP
//! endpoint), [`cli`] (the one-shot subcommands), [`harden`] (process limits, safe file opens),
//! [`telemetry`] (logging).
#![warn(missing_docs)]

// Leaf types.
pub mod calendar;
pub mod clock;
pub mod config;
pub mod ist;
pub mod secret;
pub mod totp;

// Dhan.
pub mod dhan;
pub mod mint;
mod transport;

// Token lifecycle.
pub mod events;
pub mod fleet;
pub mod gate;
pub mod hook;
pub mod lifecycle;
pub mod metrics;
pub mod planner;
pub mod policy;
pub mod state;
pub mod token;

// Conversation.
pub mod account;
pub mod alerts;
pub mod commands;
pub mod paste;
pub mod replies;
pub mod telegram;

// Edges.
pub mod app;
pub mod cli;
pub mod harden;
pub mod serve;
pub mod telemetry;
mod watch;

#[cfg(test)]
mod proptests;
