//! A thin Bot API client over the reqwest we already ship; request types come from
//! `frankenstein`, incoming objects from [`super::types`].
//!
//! Only the calls dhan-keeper makes. Every reply is decoded from the `{ok, result}` /
//! `{ok, error_code, description, parameters}` envelope into [`TgError`] variants the callers
//! branch on (retry after, back off, give up). The bot token is part of every URL, so no reqwest
//! error is ever displayed with its URL.

use std::time::Duration;

use frankenstein::methods::{AnswerCallbackQueryParams, GetUpdatesParams, SendMessageParams, SetMyCommandsParams};
use frankenstein::types::BotCommand;

use super::types::{Update, User};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::secret::Secret;

/// What went wrong with a Bot API call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TgError {
    /// Telegram answered with an error envelope.
    #[error("Telegram refused {method}: {code} {description}")]
    Api {
        /// The method called.
        method: &'static str,
        /// `error_code` (the HTTP status).
        code: u16,
        /// Telegram's description, e.g. "Bad Request: chat not found".
        description: String,
        /// Seconds to wait, on 429.
        retry_after: Option<u64>,
    },
    /// No answer: connection refused, reset, timed out.
    #[error("cannot reach Telegram ({method}): {detail}")]
    Transport {
        /// The method called.
        method: &'static str,
        /// What the transport said, without the URL (it holds the bot token).
        detail: String,
    },
    /// An answer that is not the Bot API's envelope.
    #[error("unexpected reply from Telegram ({method}): {detail}")]
    Malformed {
        /// The method called.
        method: &'static str,
        /// What was wrong with it.
        detail: String,
    },
}

impl TgError {
    /// Worth retrying the same request later (network, 5xx, 429); a 4xx other than 429 is final.
    pub fn is_transient(&self) -> bool {
        match self {
            TgError::Api { code, .. } => *code == 429 || *code >= 500,
            TgError::Transport { .. } | TgError::Malformed { .. } => true,
        }
    }

    /// The wait Telegram asked for, on 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TgError::Api { retry_after: Some(s), .. } => Some(Duration::from_secs((*s).min(3600))),
            _ => None,
        }
    }

    /// Whether another process polls the same bot (409 Conflict).
    pub fn is_conflict(&self) -> bool {
        matches!(self, TgError::Api { code: 409, .. })
    }

    /// Whether the message text was rejected as unparsable markup.
    pub fn is_parse_error(&self) -> bool {
        matches!(self, TgError::Api { code: 400, description, .. } if description.contains("can't parse entities"))
    }
}

/// A Bot API client bound to one bot token and base URL.
#[derive(Clone)]
pub struct BotClient {
    http: reqwest::Client,
    /// `<api>/bot<token>/`, kept private and never logged.
    base: Secret,
}

impl std::fmt::Debug for BotClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BotClient { [redacted] }")
    }
}

/// How long Telegram may hold a `getUpdates` call open.
pub const LONG_POLL: Duration = Duration::from_secs(25);

impl BotClient {
    /// A client for `api_url` (e.g. `https://api.telegram.org`) and a bot token.
    pub fn new(api_url: &Url, token: &Secret) -> Result<Self, TgError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("dhan-keeper/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TgError::Transport { method: "init", detail: e.without_url().to_string() })?;
        let base = format!("{}/bot{}/", api_url.as_str().trim_end_matches('/'), token.expose());
        Ok(Self { http, base: Secret::new(base) })
    }

    async fn call<P: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: &'static str,
        params: &P,
        timeout: Duration,
    ) -> Result<T, TgError> {
        let url = format!("{}{method}", self.base.expose());
        let transport = |e: reqwest::Error| TgError::Transport { method, detail: e.without_url().to_string() };
        let resp = self.http.post(url).json(params).timeout(timeout).send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(transport)?;
        let malformed = |detail: String| TgError::Malformed { method, detail };
        let v: Value = serde_json::from_slice(&body)
            .map_err(|_| malformed(format!("HTTP {status} with a body that is not JSON ({} bytes)", body.len())))?;
        if v.get("ok").and_then(Value::as_bool) == Some(true) {
            let result = v.get("result").cloned().unwrap_or(Value::Null);
            return serde_json::from_value(result).map_err(|e| malformed(format!("result does not decode: {e}")));
        }
        let code = v.get("error_code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()).unwrap_or(status);
        let description = v
            .get("description")
            .and_then(Value::as_str)
            .map(crate::dhan::clip)
            .unwrap_or_else(|| format!("HTTP {status}"));
        let retry_after = v.pointer("/parameters/retry_after").and_then(Value::as_u64);
        Err(TgError::Api { method, code, description, retry_after })
    }

    fn short() -> Duration {
        Duration::from_secs(20)
    }

    /// `getMe`: the bot's own user (its username matters for `/cmd@botname`).
    pub async fn get_me(&self) -> Result<User, TgError> {
        self.call("getMe", &serde_json::json!({}), Self::short()).await
    }

    /// `getUpdates` long poll from `offset`, each update left undecoded so one unknown update
    /// cannot make the whole batch fail.
    pub async fn get_updates(&self, offset: i64, timeout: Duration) -> Result<Vec<Value>, TgError> {
        let params = GetUpdatesParams::builder()
            .offset(offset)
            .timeout(u32::try_from(timeout.as_secs()).unwrap_or(25))
            .limit(100)
            .allowed_updates(vec![
                frankenstein::types::AllowedUpdate::Message,
                frankenstein::types::AllowedUpdate::CallbackQuery,
            ])
            .build();
        self.call("getUpdates", &params, timeout + Duration::from_secs(10)).await
    }

    /// Decodes one raw update.
    pub fn decode(update: Value) -> Result<Update, serde_json::Error> {
        serde_json::from_value(update)
    }

    /// `sendMessage` (the echoed message is not needed).
    pub async fn send_message(&self, params: &SendMessageParams) -> Result<(), TgError> {
        self.call::<_, serde::de::IgnoredAny>("sendMessage", params, Self::short()).await.map(|_| ())
    }

    /// `answerCallbackQuery`.
    pub async fn answer_callback_query(&self, params: &AnswerCallbackQueryParams) -> Result<(), TgError> {
        self.call::<_, serde::de::IgnoredAny>("answerCallbackQuery", params, Self::short()).await.map(|_| ())
    }

    /// `setMyCommands`.
    pub async fn set_my_commands(&self, commands: Vec<BotCommand>) -> Result<(), TgError> {
        let params = SetMyCommandsParams::builder().commands(commands).build();
        self.call::<_, serde::de::IgnoredAny>("setMyCommands", &params, Self::short()).await.map(|_| ())
    }
}
