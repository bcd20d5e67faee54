//! Reading one key at a time, collecting one problem message per bad key.

use std::time::Duration;

use serde_json::{Map, Value};
use url::Url;

use crate::secret::Secret;

use super::{DAY, is_this_machine};

/// Collects problems while reading keys; a failed key yields `None` and one message.
pub(in crate::config) struct Reader<'a> {
    pub(in crate::config) map: &'a Map<String, Value>,
    pub(in crate::config) problems: Vec<String>,
    pub(in crate::config) warnings: Vec<String>,
}

impl Reader<'_> {
    pub(in crate::config) fn problem(&mut self, msg: String) -> Option<std::convert::Infallible> {
        self.problems.push(msg);
        None
    }

    /// A string value, or `None` when absent, null or empty. Numbers are accepted as text.
    pub(in crate::config) fn text(&mut self, key: &str) -> Option<String> {
        match self.map.get(key)? {
            Value::Null => None,
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => {
                self.problem(format!("`{key}` must be a string"));
                None
            }
        }
    }

    /// Placeholders copied from the prototype's example (`YOUR_CLIENT_ID`) are reported as such.
    pub(in crate::config) fn not_placeholder(&mut self, key: &str, v: String, what: &str) -> Option<String> {
        if v.to_ascii_uppercase().starts_with("YOUR_") {
            self.problem(format!("`{key}` is still the example placeholder; replace it with {what}"));
            return None;
        }
        Some(v)
    }

    pub(in crate::config) fn secret(&mut self, key: &str, what: &str) -> Option<Secret> {
        let v = self.text(key)?;
        self.not_placeholder(key, v, what).map(Secret::new)
    }

    pub(in crate::config) fn chat_id(&mut self, key: &str) -> Option<i64> {
        let v = self.text(key)?;
        let v = self.not_placeholder(key, v, "the numeric chat id (message @userinfobot to see yours)")?;
        match v.parse::<i64>() {
            Ok(id) if id != 0 => Some(id),
            _ => {
                self.problem(format!(
                    "`{key}` must be a numeric Telegram chat id such as 123456789 (groups are negative), got {v:?}; \
                     message @userinfobot to see yours"
                ));
                None
            }
        }
    }

    pub(in crate::config) fn url(&mut self, key: &str, default: &str) -> Option<Url> {
        let raw = self.text(key).unwrap_or_else(|| default.to_string());
        match Url::parse(&raw) {
            Ok(u) if u.scheme() == "http" && u.has_host() && u.query().is_none() && !is_this_machine(&u) => {
                self.problem(format!(
                    "`{key}` uses plain http:// to another machine ({}); what is sent there (the PIN and TOTP code, \
                     tokens, the bot token) would cross the network unencrypted; use https://, or http:// only to \
                     127.0.0.1 / localhost",
                    u.host_str().unwrap_or_default()
                ));
                None
            }
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() && u.query().is_none() => Some(u),
            Ok(_) => {
                self.problem(format!(
                    "`{key}` must be an http(s) base URL without a query, like {default}; got {raw:?}"
                ));
                None
            }
            Err(e) => {
                self.problem(format!("`{key}` is not a URL ({e}): {raw:?}; expected something like {default}"));
                None
            }
        }
    }

    /// Whether a problem was already reported for `key`.
    pub(in crate::config) fn failed(&self, key: &str) -> bool {
        let tag = format!("`{key}`");
        self.problems.iter().any(|p| p.starts_with(&tag))
    }

    /// A small positive whole number. Like every optional key below, a bad value is reported
    /// and the default stands in, so validation goes on (the config is refused anyway).
    pub(in crate::config) fn count(&mut self, key: &str, default: u32) -> u32 {
        let Some(raw) = self.text(key) else {
            return default;
        };
        match raw.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                self.problem(format!("`{key}` must be a whole number from 1 to 1000 (default {default}); got {raw:?}"));
                default
            }
        }
    }

    pub(in crate::config) fn duration(&mut self, key: &str, default: Duration) -> Duration {
        let Some(raw) = self.text(key) else {
            return default;
        };
        match humantime::parse_duration(&raw) {
            Ok(d) if d.is_zero() || d >= DAY => {
                self.problem(format!("`{key}` must be more than 0 and less than 24h (tokens live 24h); got {raw:?}"));
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.problem(format!("`{key}` is not a duration ({e}); write it like \"2h\", \"30m\" or \"1h 30m\""));
                default
            }
        }
    }
}
