//! Configuration: the prototype's `dhan_config.json`, plus optional keys, env overrides and
//! `*_file` secrets, validated once into a [`Config`] whose fields are already typed.
//!
//! Layers, later wins: the JSON file, then `DHAN_KEEPER_<KEY>` environment variables, then for
//! secrets `<key>_file` (a path whose contents are the value, as systemd credentials provide).
//! Validation reports every problem at once, each naming the key and the fix, and never echoes a
//! secret value.

mod accounts;
mod fleet;
mod load;
mod validate;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveTime;
use url::Url;

use crate::calendar::{Calendar, Segment, Segments};
use crate::secret::Secret;
use crate::totp::TotpSecret;

pub use accounts::{ACCOUNT_KEYS, ACCOUNTS_KEY, AccountConfig, Accounts, Label, no_label, unknown_label};
pub use fleet::{CLI_REFRESH_IN_A_FLEET, FleetConfig};
pub use load::{ConfigError, ENV_PREFIX, default_path};

/// Every key the config file may hold (secrets may also be given as `<key>_file`).
pub const KNOWN_KEYS: &[&str] = &[
    "client_id",
    "api_key",
    "api_secret",
    "totp_secret",
    "telegram_bot_token",
    "telegram_chat_id",
    "admin_chat_id",
    "pin",
    "token_file",
    "alert_before",
    "refresh_before",
    "market_hours",
    "dhan_auth_url",
    "dhan_api_url",
    "telegram_api_url",
    "on_refresh",
    "http_listen",
    "http_token",
    "dhan_timeout",
    "final_alert_before",
    "mint_cooldown",
    "retry_min",
    "retry_max",
    "alert_after_failures",
    "verify_every",
    "reprobe_after",
    "hook_timeout",
    "calendar_file",
    "http_allow_remote",
    "token_file_mode",
    "token_file_group",
    "redis_url",
    "node_name",
    "fleet_key",
    "fleet_lease",
    "bind_address",
];

/// Keys that hold secrets: never echoed, and also readable from `<key>_file`.
pub const SECRET_KEYS: &[&str] =
    &["api_key", "api_secret", "totp_secret", "pin", "telegram_bot_token", "http_token", "redis_url", "fleet_key"];

/// How tokens are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `pin` + `totp_secret`: `generateAccessToken`, no human needed.
    Automatic,
    /// `api_key` + `api_secret` without a PIN: the trader logs in through a consent link.
    Consent,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Automatic => "automatic (TOTP + PIN)",
            Mode::Consent => "consent (login link on Telegram)",
        })
    }
}

/// The IST window, Monday to Friday, in which a rotation would cut off a trading program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketHours {
    /// Opening time, IST.
    pub open: NaiveTime,
    /// Closing time, IST.
    pub close: NaiveTime,
}

impl Default for MarketHours {
    fn default() -> Self {
        Self {
            open: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
            close: NaiveTime::from_hms_opt(15, 30, 0).unwrap_or_default(),
        }
    }
}

/// What `market_hours` asks rotations to stay out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarketChoice {
    /// `"HH:MM-HH:MM"`: one fixed IST window, Monday to Friday (exchange holidays ignored).
    Window(MarketHours),
    /// `"equity"` (the default), `"commodity"`, `"currency"` or a list: every session of those
    /// segments in the [`crate::calendar`], special sessions included.
    Segments(Segments),
}

impl Default for MarketChoice {
    fn default() -> Self {
        MarketChoice::Segments(Segments::one(Segment::Equity))
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from, if any (env-only configs have none).
    pub path: Option<PathBuf>,
    /// Dhan client id.
    pub client_id: String,
    /// API key (`app_id`) for the consent flow.
    pub api_key: Option<Secret>,
    /// API secret (`app_secret`) for the consent flow.
    pub api_secret: Option<Secret>,
    /// TOTP shared secret.
    pub totp_secret: Option<TotpSecret>,
    /// Dhan PIN for automatic minting.
    pub pin: Option<Secret>,
    /// Telegram bot token.
    pub telegram_bot_token: Option<Secret>,
    /// Chat that receives alerts and may read status.
    pub telegram_chat_id: Option<i64>,
    /// Chat that may also refresh, pause, resume and paste tokens (defaults to `telegram_chat_id`).
    pub admin_chat_id: Option<i64>,
    /// Where the token is kept.
    pub token_file: PathBuf,
    /// How long before expiry to warn when no fresh token is in hand.
    pub alert_before: Duration,
    /// How long before expiry automatic mode rotates at the latest.
    pub refresh_before: Duration,
    /// Market hours to avoid for rotations; `None` when `"off"`.
    pub market_hours: Option<MarketChoice>,
    /// The exchange calendar: the embedded data with the user's `calendar_file` applied.
    pub calendar: Arc<Calendar>,
    /// The user's additions to the calendar, if any.
    pub calendar_file: Option<PathBuf>,
    /// Base URL of Dhan's auth host.
    pub dhan_auth_url: Url,
    /// Base URL of Dhan's api host.
    pub dhan_api_url: Url,
    /// Base URL of the Telegram Bot API.
    pub telegram_api_url: Url,
    /// Command (argv) run after each new token.
    pub on_refresh: Option<Vec<String>>,
    /// Loopback address for `/healthz`, `/metrics`, `/token`.
    pub http_listen: Option<SocketAddr>,
    /// Bearer token that `/token` requires.
    pub http_token: Option<Secret>,
    /// Per-request timeout for Dhan calls.
    pub dhan_timeout: Duration,
    /// The last alert step before expiry (default 30 min).
    pub final_alert_before: Duration,
    /// Dhan's minimum gap between two mint attempts, counted from the last attempt or refusal
    /// (default 125 s: Dhan's 2 minutes plus a margin; lower it only for a simulator).
    pub mint_cooldown: Duration,
    /// First retry delay after a failed rotation (default 5 s).
    pub retry_min: Duration,
    /// Longest retry delay (default 5 min).
    pub retry_max: Duration,
    /// Failed rotations in a row before the trader is alerted (default 3).
    pub alert_after_failures: u32,
    /// How often a live token is checked with `/v2/profile` to notice revocation (default 15 min).
    pub verify_every: Duration,
    /// After Dhan rejects a token that should be alive, how long until it is checked again
    /// (default 10 s); it is called revoked after [`REPROBES`](crate::lifecycle::REPROBES) more
    /// rejections.
    pub reprobe_after: Duration,
    /// How long `on_refresh` may run before it is killed (default 30 s).
    pub hook_timeout: Duration,
    /// Lets `http_listen` be a non-loopback address (needs `http_token`); default false.
    pub http_allow_remote: bool,
    /// Permission bits of the token file (default 0o600; at most 0o660).
    pub token_file_mode: u32,
    /// Group (gid) the token file is given to, so another user in it can read the token.
    pub token_file_group: Option<u32>,
    /// Redis coordination with other keepers (`redis_url`, `node_name`, `fleet_key`); `None`
    /// without `redis_url`: a single host, as before.
    pub fleet: Option<FleetConfig>,
    /// The local IP address every call to Dhan leaves from (Dhan ties API orders to a static IP
    /// per client, so family accounts on one server often have one address each); `None`: the
    /// system's choice.
    pub bind_address: Option<IpAddr>,
    /// Things worth telling the user that do not stop dhan-keeper.
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads from `--config`, else `$DHAN_KEEPER_CONFIG`, else `./dhan_config.json`, with env
    /// overrides from the process environment.
    pub fn load(explicit: Option<PathBuf>) -> Result<Self, ConfigError> {
        load::load(explicit, &|k| std::env::var(k).ok())
    }

    /// Loads with an injected environment, for tests.
    pub fn load_with_env(explicit: Option<PathBuf>, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        load::load(explicit, env)
    }

    /// Loads every account the config describes: the entries of `accounts`, or the top level as
    /// one account labelled by its client id. Found as [`Config::load`] finds the file.
    pub fn load_accounts(explicit: Option<PathBuf>) -> Result<Accounts, ConfigError> {
        Self::load_accounts_with_env(explicit, &|k| std::env::var(k).ok())
    }

    /// [`Config::load_accounts`] with an injected environment, for tests.
    pub fn load_accounts_with_env(
        explicit: Option<PathBuf>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Accounts, ConfigError> {
        accounts::from_layers(load::read(explicit, env)?)
    }

    /// Which way tokens are obtained.
    pub fn mode(&self) -> Mode {
        if self.pin.is_some() && self.totp_secret.is_some() { Mode::Automatic } else { Mode::Consent }
    }

    /// A short one-way fingerprint of the minting credentials (client id, PIN, TOTP secret): a
    /// credential stop recorded for one fingerprint is lifted when any of them changes. It
    /// contains the 160-bit TOTP secret, so it cannot be used to guess the PIN.
    pub fn credentials_id(&self) -> String {
        use sha1::Digest;
        let mut h = sha1::Sha1::new();
        h.update(self.client_id.as_bytes());
        h.update([0]);
        h.update(self.pin.as_ref().map_or("", |p| p.expose()).as_bytes());
        h.update([0]);
        h.update(self.totp_secret.as_ref().map_or(&[][..], |t| t.bytes()));
        h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// The segments whose sessions matter to this user: those `market_hours` names, else equity.
    pub fn calendar_segments(&self) -> Segments {
        match self.market_hours {
            Some(MarketChoice::Segments(s)) => s,
            _ => Segments::one(Segment::Equity),
        }
    }

    /// The lock file that keeps two processes from minting at once.
    pub fn lock_file(&self) -> PathBuf {
        let mut name =
            self.token_file.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "dhan_token.json".into());
        name.push(".lock");
        self.token_file.with_file_name(name)
    }
}
