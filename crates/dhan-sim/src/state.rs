//! The simulated account's state and Dhan's rules, independent of HTTP.
//!
//! One active token per client: every issuance (mint, consent, renew, or a "mint elsewhere")
//! supersedes the previous token. Tokens are remembered so a superseded one answers differently
//! from one never issued.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde_json::{Value, json};
use totp_rs::{Algorithm, TOTP};

use crate::config::{Account, MintCheck, RenewApp, SimConfig, Superseded};
use crate::jwt;

/// An issued token.
#[derive(Debug, Clone)]
pub struct Issued {
    /// When it dies.
    pub expires_at: DateTime<Utc>,
    /// `APP` or `SELF`.
    pub consumer_type: &'static str,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// Never issued, or garbage.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Replaced by a newer token.
    Superseded,
}

/// Consent lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConsentStatus {
    Generated,
    LoggedIn,
}

/// How many requests [`SimState::call_log`] keeps.
pub const CALL_LOG_MAX: usize = 10_000;

/// One request as the simulator saw it.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// Route key (`generateAccessToken`, `profile`, ...).
    pub route: String,
    /// When it arrived, by the real wall clock.
    pub received: std::time::SystemTime,
    /// How long the simulator took to produce the answer.
    pub took: std::time::Duration,
}

/// Everything the simulator remembers.
#[derive(Debug)]
pub struct SimState {
    /// Settings.
    pub config: SimConfig,
    /// Account data served by the api routes.
    pub account: Account,
    tokens: HashMap<String, Issued>,
    active: Option<String>,
    last_mint: Option<DateTime<Utc>>,
    consents: HashMap<String, ConsentStatus>,
    consents_today: Vec<DateTime<Utc>>,
    token_ids: HashMap<String, bool>,
    recent_api_calls: VecDeque<DateTime<Utc>>,
    /// Requests seen per route (including faulted ones).
    pub calls: HashMap<String, u64>,
    /// The last [`CALL_LOG_MAX`] requests: route, when it arrived (real wall clock), how long the
    /// simulator took to answer.
    pub call_log: VecDeque<CallRecord>,
    /// Tokens issued to callers (mint, consent, renew), not counting "mint elsewhere".
    pub issued_count: u64,
    /// Successful `generateAccessToken` calls.
    pub mint_count: u64,
    /// The other clients ([`SimConfig::extra_clients`]), each with its own state. Their
    /// `config` follows this one's knobs ([`SimState::sync_clients`]); only their credentials
    /// are their own.
    others: Vec<SimState>,
}

/// A reply: status and JSON body.
pub type Reply = (u16, Value);

fn auth_error(message: &str) -> Reply {
    (200, json!({"status": "error", "message": message}))
}

/// The api host's error body.
pub fn api_error(status: u16, error_type: &str, code: &str, message: &str) -> Reply {
    (status, json!({"errorType": error_type, "errorCode": code, "errorMessage": message}))
}

/// 401 DH-901.
pub fn dh901() -> Reply {
    api_error(
        401,
        "Invalid_Authentication",
        "DH-901",
        "Client ID or user generated access token is invalid or expired.",
    )
}

/// 400 DH-905.
pub fn dh905(message: &str) -> Reply {
    api_error(400, "Input_Exception", "DH-905", message)
}

/// 401 from the auth host for a wrong `app_id`/`app_secret` (observed body).
fn unauthorized() -> Reply {
    (401, json!({"status": "error", "message": "Unauthorized"}))
}

/// `t` in IST (+05:30), the zone every Dhan wall time is written in.
fn in_ist(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.with_timezone(&FixedOffset::east_opt(19_800).expect("+05:30 is within ±24 h"))
}

/// Dhan's expiryTime: naive IST, optionally with millis.
pub fn ist_naive(t: DateTime<Utc>, millis: bool) -> String {
    let ist = in_ist(t);
    if millis { ist.format("%Y-%m-%dT%H:%M:%S%.3f").to_string() } else { ist.format("%Y-%m-%dT%H:%M:%S").to_string() }
}

impl SimState {
    fn issue(&mut self, now: DateTime<Utc>, consumer_type: &'static str) -> (String, DateTime<Utc>) {
        let lifetime = Duration::from_std(self.config.token_lifetime).unwrap_or_else(|_| Duration::hours(24));
        let expires_at = now + lifetime;
        let token = jwt::make(&self.config.client_id, now.timestamp(), expires_at.timestamp(), consumer_type);
        self.tokens.insert(token.clone(), Issued { expires_at, consumer_type });
        self.active = Some(token.clone());
        (token, expires_at)
    }

    fn token_body(&self, token: &str, expires_at: DateTime<Utc>, millis: bool) -> Value {
        json!({
            "dhanClientId": self.config.client_id,
            "dhanClientName": self.config.client_name,
            "dhanClientUcc": "ABCD12345E",
            "givenPowerOfAttorney": false,
            "accessToken": token,
            "expiryTime": ist_naive(expires_at, millis),
        })
    }

    /// Whether `code` is a valid TOTP for the configured secret at `now` (±`totp_skew` windows).
    pub fn totp_ok(&self, code: &str, now: DateTime<Utc>) -> bool {
        self.totp().is_some_and(|t| t.check(code, now.timestamp().max(0) as u64))
    }

    /// The current code, for the admin API and demos.
    pub fn totp_now(&self, now: DateTime<Utc>) -> Option<(String, u64)> {
        let t = self.totp()?;
        let secs = now.timestamp().max(0) as u64;
        Some((t.generate(secs), 30 - secs % 30))
    }

    fn totp(&self) -> Option<TOTP> {
        let bytes =
            totp_rs::Secret::Encoded(self.config.totp_secret.to_ascii_uppercase().replace(' ', "")).to_bytes().ok()?;
        Some(TOTP::new_unchecked(Algorithm::SHA1, 6, self.config.totp_skew, 30, bytes))
    }

    /// `POST /app/generateAccessToken`, its checks in [`SimConfig::mint_check_order`].
    /// `json_content_type`: the request carried `Content-Type: application/json`.
    pub fn generate_access_token(
        &mut self,
        client: Option<&str>,
        pin: Option<&str>,
        totp: Option<&str>,
        json_content_type: bool,
        now: DateTime<Utc>,
    ) -> Reply {
        let missing = || dh905("Missing required fields, bad values for parameters etc.");
        for check in self.config.mint_check_order.clone() {
            let refusal = match check {
                MintCheck::Params => (client.is_none() || pin.is_none() || totp.is_none()).then(missing),
                MintCheck::ContentType => (json_content_type && self.config.reject_json_content_type).then(missing),
                MintCheck::Cooldown => self.in_window(now).then(|| {
                    if self.config.cooldown_rearms {
                        self.last_mint = Some(now);
                    }
                    auth_error("Token can be generated once every 2 minutes.")
                }),
                MintCheck::Credentials => (client != Some(self.config.client_id.as_str())
                    || pin != Some(self.config.pin.as_str()))
                .then(|| self.failed_attempt(now, &self.config.bad_credentials_message.clone())),
                MintCheck::Totp => {
                    (!self.totp_ok(totp.unwrap_or_default(), now)).then(|| self.failed_attempt(now, "Invalid TOTP"))
                }
            };
            if let Some(reply) = refusal {
                return reply;
            }
        }
        self.last_mint = Some(now);
        self.mint_count += 1;
        self.issued_count += 1;
        let (token, exp) = self.issue(now, "APP");
        (200, self.token_body(&token, exp, true))
    }

    /// Whether a mint at `now` falls inside the window opened by the last counted attempt.
    fn in_window(&self, now: DateTime<Utc>) -> bool {
        let cooldown = Duration::from_std(self.config.mint_cooldown).unwrap_or_default();
        self.last_mint.is_some_and(|last| now - last < cooldown)
    }

    fn failed_attempt(&mut self, now: DateTime<Utc>, message: &str) -> Reply {
        if self.config.failed_mint_starts_window {
            self.last_mint = Some(now);
        }
        auth_error(message)
    }

    /// A mint attempt that Dhan counted without answering with a token (the slow, empty reply
    /// seen live): it starts the window like a mint.
    pub fn count_mint_attempt(&mut self, now: DateTime<Utc>) {
        self.last_mint = Some(now);
    }

    /// `GET /v2/ip/getIP` for a caller at `detected`: the static IP setup, whether the caller's
    /// address matches it, and so whether orders from there are allowed.
    pub fn get_ip(&self, detected: Option<std::net::IpAddr>) -> Reply {
        let ip = &self.account.static_ip;
        if ip.primary_ip.is_empty() && ip.secondary_ip.is_empty() {
            return (200, json!([{"message": self.config.ip_error_message, "status": "ERROR"}]));
        }
        let detected = detected.map(|a| a.to_string()).unwrap_or_default();
        let matched = !detected.is_empty() && (detected == ip.primary_ip || detected == ip.secondary_ip);
        (
            200,
            json!({
                "primaryIP": ip.primary_ip,
                "secondaryIP": ip.secondary_ip,
                "modifyDatePrimary": ip.modify_date_primary,
                "modifyDateSecondary": ip.modify_date_secondary,
                "detectedIP": detected,
                "ipMatchStatus": if matched { "MATCH" } else { "MISMATCH" },
                "ordersAllowed": matched,
            }),
        )
    }

    fn app_credentials_ok(&self, app_id: Option<&str>, app_secret: Option<&str>) -> bool {
        app_id == Some(self.config.api_key.as_str()) && app_secret == Some(self.config.api_secret.as_str())
    }

    /// `POST /app/generate-consent`.
    pub fn generate_consent(
        &mut self,
        client: Option<&str>,
        app_id: Option<&str>,
        app_secret: Option<&str>,
        now: DateTime<Utc>,
    ) -> Reply {
        if !self.app_credentials_ok(app_id, app_secret) {
            return unauthorized();
        }
        if client != Some(self.config.client_id.as_str()) {
            return (400, json!({"status": "error", "message": "Invalid client_id"}));
        }
        self.consents_today.retain(|t| now - *t < Duration::hours(24));
        if self.consents_today.len() >= self.config.consents_per_day as usize {
            return (400, json!({"status": "error", "message": "Consent limit for the day reached"}));
        }
        self.consents_today.push(now);
        let id = jwt::uuid();
        self.consents.insert(id.clone(), ConsentStatus::Generated);
        (200, json!({"consentAppId": id, "consentAppStatus": "GENERATED", "status": "success"}))
    }

    /// `GET /login/consentApp-login`: the human step. Returns the redirect target.
    pub fn login(&mut self, consent_id: &str) -> Option<String> {
        let status = self.consents.get_mut(consent_id)?;
        if *status != ConsentStatus::Generated {
            return None;
        }
        *status = ConsentStatus::LoggedIn;
        let token_id = jwt::uuid();
        self.token_ids.insert(token_id.clone(), false);
        let sep = if self.config.redirect_url.contains('?') { '&' } else { '?' };
        let base = self.config.redirect_url.trim_end_matches('/');
        Some(format!("{base}/{sep}tokenId={token_id}"))
    }

    /// `GET|POST /app/consumeApp-consent`.
    pub fn consume_consent(
        &mut self,
        token_id: Option<&str>,
        app_id: Option<&str>,
        app_secret: Option<&str>,
        now: DateTime<Utc>,
    ) -> Reply {
        if !self.app_credentials_ok(app_id, app_secret) {
            return unauthorized();
        }
        let Some(token_id) = token_id else {
            return dh905("Missing required fields, bad values for parameters etc.");
        };
        match self.token_ids.get_mut(token_id) {
            Some(used) if !*used => *used = true,
            _ => {
                return (400, json!({"status": "error", "message": "Invalid or expired tokenId"}));
            }
        }
        self.issued_count += 1;
        let (token, exp) = self.issue(now, "APP");
        (200, self.token_body(&token, exp, false))
    }

    /// Checks an access token for the api routes.
    pub fn check_token(&self, token: Option<&str>, now: DateTime<Utc>) -> Result<&Issued, TokenCheck> {
        let token = token.ok_or(TokenCheck::Unknown)?;
        let issued = self.tokens.get(token).ok_or(TokenCheck::Unknown)?;
        if self.active.as_deref() != Some(token) {
            return Err(TokenCheck::Superseded);
        }
        if issued.expires_at <= now {
            return Err(TokenCheck::Expired);
        }
        Ok(issued)
    }

    /// The error reply for a refused token.
    pub fn token_refusal(&self, why: TokenCheck) -> Reply {
        match (why, self.config.superseded) {
            (TokenCheck::Superseded, Superseded::Dh906) => api_error(400, "Order_Error", "DH-906", "Invalid Token"),
            (TokenCheck::Superseded, Superseded::Dh906Http401) => {
                api_error(401, "Order_Error", "DH-906", "Invalid Token")
            }
            _ => dh901(),
        }
    }

    /// Every access token ever issued to any client (including "minted elsewhere").
    pub fn all_tokens(&self) -> Vec<String> {
        self.clients().flat_map(|c| c.tokens.keys().cloned()).collect()
    }

    /// `GET /v2/RenewToken`.
    pub fn renew(&mut self, token: Option<&str>, client_header: Option<&str>, now: DateTime<Utc>) -> Reply {
        let consumer = match self.check_token(token, now) {
            Ok(i) => i.consumer_type,
            Err(why) => return self.token_refusal(why),
        };
        if client_header != Some(self.config.client_id.as_str()) {
            return dh901();
        }
        if consumer == "APP" {
            match self.config.renew_app {
                RenewApp::Succeed => {}
                RenewApp::Dh901 => return dh901(),
                RenewApp::Dh905 => {
                    return dh905("Token renewal is only supported for tokens generated from Dhan Web");
                }
                RenewApp::Dh905Http500 => {
                    return api_error(
                        500,
                        "INVALID_REQUEST",
                        "DH-905",
                        "Renewal of token not allowed for this token type",
                    );
                }
            }
        }
        self.issued_count += 1;
        let (token, exp) = self.issue(now, consumer);
        (200, self.token_body(&token, exp, true))
    }

    /// Someone minted a token elsewhere (Dhan Web, another script): the current one dies.
    pub fn mint_elsewhere(&mut self, now: DateTime<Utc>) {
        self.issue(now, "SELF");
    }

    /// Forgets the last mint, so the next one is not held back by the cooldown.
    pub fn reset_cooldown(&mut self) {
        self.last_mint = None;
    }

    /// Makes the active token expire now.
    pub fn expire_active(&mut self, now: DateTime<Utc>) {
        if let Some(i) = self.active.clone().and_then(|t| self.tokens.get_mut(&t)) {
            i.expires_at = now;
        }
    }

    /// Counts an account-route call; `false` when over the per-second limit.
    pub fn within_rate_limit(&mut self, now: DateTime<Utc>) -> bool {
        while self.recent_api_calls.front().is_some_and(|t| now - *t >= Duration::seconds(1)) {
            self.recent_api_calls.pop_front();
        }
        if self.recent_api_calls.len() >= self.config.rate_limit_per_sec as usize {
            return false;
        }
        self.recent_api_calls.push_back(now);
        true
    }

    /// `GET /v2/profile` body for a token expiring at `expires_at`.
    pub fn profile(&self, expires_at: DateTime<Utc>) -> Value {
        let ist = in_ist(expires_at);
        let mut body = json!({
            "dhanClientId": self.config.client_id,
            "tokenValidity": ist.format("%d/%m/%Y %H:%M").to_string(),
        });
        if let (Some(obj), Some(extra)) = (body.as_object_mut(), self.account.profile.as_object()) {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        body
    }

    /// `GET /v2/holdings`: production answers an empty portfolio with 500 DH-1111.
    pub fn holdings(&self) -> Reply {
        if self.account.holdings.is_empty() && !self.config.sandbox_empty_holdings {
            return api_error(500, "HOLDING_ERROR", "DH-1111", "No holdings available");
        }
        (200, Value::Array(self.account.holdings.clone()))
    }
}

mod clients;
#[cfg(test)]
mod tests;
