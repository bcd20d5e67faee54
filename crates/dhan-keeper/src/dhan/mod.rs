//! One concrete client for Dhan's two hosts: auth (minting, consent) and api (renewal, account).
//!
//! Base URLs come from the config, so tests and the demo point it at the simulator on 127.0.0.1.
//! Every call has an explicit timeout, sends a browser-like `User-Agent` (CloudFront has refused
//! library defaults on the auth host), and maps every reply, including Dhan's HTTP-200 rejections,
//! to a [`DhanError`]. Transport errors are stripped of their URL before they are kept: the mint
//! URL carries the PIN and the TOTP code in its query string.

pub mod codes;
pub(crate) mod error;
pub mod jwt;
mod types;
mod wire;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use url::Url;

pub use error::DhanError;
pub(crate) use error::clip;
use error::{api_error, classify_api_error, classify_mint_message, error_code};
pub use types::{ConsentId, IpStatus, Minted, Probe};
pub use wire::{FundLimit, Holding, Position, Profile};

use crate::ist;
use crate::secret::Secret;

/// The User-Agent sent to Dhan.
pub const USER_AGENT: &str = concat!(
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) dhan-keeper/",
    env!("CARGO_PKG_VERSION")
);

/// The Dhan client.
#[derive(Debug, Clone)]
pub struct DhanClient {
    http: reqwest::Client,
    auth_url: Url,
    api_url: Url,
    client_id: String,
    timeout: Duration,
    bind_address: Option<IpAddr>,
}

impl DhanClient {
    /// A client for `client_id` against the given hosts.
    pub fn new(
        auth_url: Url,
        api_url: Url,
        client_id: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, DhanError> {
        Self::bound(auth_url, api_url, client_id, timeout, None)
    }

    /// A client whose every call leaves from `bind_address` (the account's static IP), or from
    /// the system's choice when `None`. Only destinations of the same family (IPv4 or IPv6) are
    /// tried, so a call never slips out from another address.
    pub fn bound(
        auth_url: Url,
        api_url: Url,
        client_id: impl Into<String>,
        timeout: Duration,
        bind_address: Option<IpAddr>,
    ) -> Result<Self, DhanError> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .local_address(bind_address)
            .build()
            .map_err(|e| DhanError::Unreachable { what: "client setup", detail: e.without_url().to_string() })?;
        Ok(Self { http, auth_url, api_url, client_id: client_id.into(), timeout, bind_address })
    }

    /// The local address calls leave from, when one is set.
    pub fn bind_address(&self) -> Option<IpAddr> {
        self.bind_address
    }

    /// The client id this client acts for.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    fn endpoint(base: &Url, path: &str) -> Url {
        let mut u = base.clone();
        let joined = format!("{}/{}", base.path().trim_end_matches('/'), path.trim_start_matches('/'));
        u.set_path(&joined);
        u
    }

    /// `POST {auth}/app/generateAccessToken?dhanClientId=&pin=&totp=`: a new token with no human.
    #[tracing::instrument(skip_all, fields(client_id = %self.client_id))]
    pub async fn generate_access_token(&self, pin: &Secret, totp: &str) -> Result<Minted, DhanError> {
        const WHAT: &str = "generateAccessToken";
        let url = Self::endpoint(&self.auth_url, "/app/generateAccessToken");
        let req = self.http.post(url).query(&[
            ("dhanClientId", self.client_id.as_str()),
            ("pin", pin.expose()),
            ("totp", totp),
        ]);
        let (status, body) = self.send(req, WHAT).await?;
        self.token_reply(status, &body, WHAT, Reply::Mint)
    }

    /// `POST {auth}/app/generate-consent?client_id=`: step 1 of the consent flow.
    #[tracing::instrument(skip_all, fields(client_id = %self.client_id))]
    pub async fn generate_consent(&self, api_key: &Secret, api_secret: &Secret) -> Result<ConsentId, DhanError> {
        const WHAT: &str = "generate-consent";
        let url = Self::endpoint(&self.auth_url, "/app/generate-consent");
        let req = self
            .http
            .post(url)
            .query(&[("client_id", self.client_id.as_str())])
            .header("app_id", api_key.expose())
            .header("app_secret", api_secret.expose());
        let (status, body) = self.send(req, WHAT).await?;
        let parsed: wire::ConsentResponse = serde_json::from_slice(&body).unwrap_or_default();
        match (status, parsed.consent_app_id) {
            (200, Some(id)) if !id.trim().is_empty() => Ok(ConsentId(id)),
            (401 | 403, _) => {
                Err(DhanError::BadCredentials { message: clip(parsed.message.as_deref().unwrap_or("Unauthorized")) })
            }
            (200, _) if parsed.status.as_deref() == Some("error") => {
                Err(DhanError::Rejected { message: clip(parsed.message.as_deref().unwrap_or("no reason given")) })
            }
            (200, _) => Err(DhanError::Malformed { what: WHAT, detail: "no consentAppId in the reply".into() }),
            (s, _) => Err(api_error(s, &body)),
        }
    }

    /// The page the trader opens to log in and approve the consent (step 2).
    pub fn consent_login_url(&self, consent: &ConsentId) -> Url {
        let mut u = Self::endpoint(&self.auth_url, "/login/consentApp-login");
        u.query_pairs_mut().append_pair("consentAppId", &consent.0);
        u
    }

    /// `GET {auth}/app/consumeApp-consent?tokenId=`: step 3, the tokenId from the callback URL.
    #[tracing::instrument(skip_all, fields(client_id = %self.client_id))]
    pub async fn consume_consent(
        &self,
        token_id: &str,
        api_key: &Secret,
        api_secret: &Secret,
    ) -> Result<Minted, DhanError> {
        const WHAT: &str = "consumeApp-consent";
        let url = Self::endpoint(&self.auth_url, "/app/consumeApp-consent");
        let req = self
            .http
            .get(url)
            .query(&[("tokenId", token_id)])
            .header("app_id", api_key.expose())
            .header("app_secret", api_secret.expose());
        let (status, body) = self.send(req, WHAT).await?;
        self.token_reply(status, &body, WHAT, Reply::Consume)
    }

    /// `GET {api}/v2/RenewToken`: a fresh 24 h token for a live one (documented for Dhan-Web tokens).
    #[tracing::instrument(skip_all, fields(client_id = %self.client_id))]
    pub async fn renew_token(&self, token: &Secret) -> Result<Minted, DhanError> {
        const WHAT: &str = "RenewToken";
        let req = self
            .http
            .get(Self::endpoint(&self.api_url, "/v2/RenewToken"))
            .header("access-token", token.expose())
            .header("dhanClientId", &self.client_id);
        let (status, body) = self.send(req, WHAT).await?;
        self.token_reply(status, &body, WHAT, Reply::Renew)
    }

    /// `GET {api}/v2/profile`: the cheap "is this token alive" probe.
    pub async fn profile(&self, token: &Secret) -> Result<Profile, DhanError> {
        self.api_get("/v2/profile", token, "profile").await.map(|p| p.unwrap_or_default())
    }

    /// `GET {api}/v2/fundlimit`.
    pub async fn fund_limit(&self, token: &Secret) -> Result<FundLimit, DhanError> {
        self.api_get("/v2/fundlimit", token, "fundlimit").await.map(|f| f.unwrap_or_default())
    }

    /// `GET {api}/v2/holdings`; Dhan's HTTP 500 DH-1111 for an empty portfolio becomes `[]`.
    pub async fn holdings(&self, token: &Secret) -> Result<Vec<Holding>, DhanError> {
        self.api_get("/v2/holdings", token, "holdings").await.map(|h| h.unwrap_or_default())
    }

    /// `GET {api}/v2/positions`.
    pub async fn positions(&self, token: &Secret) -> Result<Vec<Position>, DhanError> {
        self.api_get("/v2/positions", token, "positions").await.map(|p| p.unwrap_or_default())
    }

    /// `GET {api}/v2/ip/getIP`: the account's static IPs and whether Dhan accepts orders from
    /// this machine. Dhan's error form is HTTP 200 with `[{"message","status":"ERROR"}]`.
    pub async fn ip_status(&self, token: &Secret) -> Result<IpStatus, DhanError> {
        const WHAT: &str = "getIP";
        let req = self
            .http
            .get(Self::endpoint(&self.api_url, "/v2/ip/getIP"))
            .header("access-token", token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        let (status, body) = self.send(req, WHAT).await?;
        if !(200..300).contains(&status) {
            return Err(api_error(status, &body));
        }
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| DhanError::Malformed { what: WHAT, detail: format!("not JSON (HTTP {status})") })?;
        if let Some(first) = v.as_array().and_then(|a| a.first()) {
            let message = first.get("message").and_then(serde_json::Value::as_str).unwrap_or("no details");
            return Err(DhanError::Rejected { message: clip(message) });
        }
        let text = |k: &str| v.get(k).and_then(serde_json::Value::as_str).map(clip).filter(|s| !s.is_empty());
        Ok(IpStatus {
            primary_ip: text("primaryIP"),
            secondary_ip: text("secondaryIP"),
            detected_ip: text("detectedIP"),
            matched: text("ipMatchStatus").map(|m| m.eq_ignore_ascii_case("MATCH")),
            orders_allowed: v.get("ordersAllowed").and_then(serde_json::Value::as_bool),
        })
    }

    /// Any HTTP answer from the api host, with its `Date` header (for the clock check).
    pub async fn probe_api(&self) -> Result<Probe, DhanError> {
        self.probe(Self::endpoint(&self.api_url, "/v2/profile"), "api host").await
    }

    /// Any HTTP answer from the auth host.
    pub async fn probe_auth(&self) -> Result<Probe, DhanError> {
        self.probe(Self::endpoint(&self.auth_url, "/"), "auth host").await
    }

    async fn probe(&self, url: Url, what: &'static str) -> Result<Probe, DhanError> {
        let started = Instant::now();
        let resp = self.http.get(url).send().await.map_err(|e| self.transport(e, what))?;
        let rtt = started.elapsed();
        let server_date = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| DateTime::parse_from_rfc2822(s).ok())
            .map(|d| d.with_timezone(&Utc));
        Ok(Probe { status: resp.status().as_u16(), rtt, server_date })
    }

    async fn api_get<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &Secret,
        what: &'static str,
    ) -> Result<Option<T>, DhanError> {
        let req = self
            .http
            .get(Self::endpoint(&self.api_url, path))
            .header("access-token", token.expose())
            .header("client-id", &self.client_id)
            .header(reqwest::header::ACCEPT, "application/json");
        let (status, body) = self.send(req, what).await?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body).map(Some).map_err(|e| DhanError::Malformed {
                what,
                detail: format!("{e} (HTTP {status}, {} bytes)", body.len()),
            });
        }
        classify_api_error(status, &body).map(|()| None)
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &'static str) -> Result<(u16, Vec<u8>), DhanError> {
        let resp = req.send().await.map_err(|e| self.transport(e, what))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| self.transport(e, what))?.to_vec();
        tracing::debug!(what, status, bytes = body.len(), "dhan reply");
        Ok((status, body))
    }

    fn transport(&self, e: reqwest::Error, what: &'static str) -> DhanError {
        if e.is_timeout() {
            return DhanError::Timeout { what, timeout: self.timeout };
        }
        // Plain words for the trader (the source chain goes to the debug log); never the URL.
        let mut detail = crate::transport::describe_reqwest(&e.without_url());
        if let Some(ip) = self.bind_address.filter(|_| detail.contains("`bind_address`")) {
            detail = format!(
                "this machine does not have the address {ip} that `bind_address` asks calls to leave from (see: ip \
                 -brief address)"
            );
        }
        DhanError::Unreachable { what, detail }
    }

    fn token_reply(&self, status: u16, body: &[u8], what: &'static str, kind: Reply) -> Result<Minted, DhanError> {
        let parsed: Result<wire::TokenResponse, _> = serde_json::from_slice(body);
        if (200..300).contains(&status) {
            // serde's message may quote a value from the body (which could be a token): say where only.
            let parsed = parsed.map_err(|e| DhanError::Malformed {
                what,
                detail: format!("not a token reply (line {}, column {})", e.line(), e.column()),
            })?;
            if let Some(token) = parsed.access_token.clone().filter(|t| !t.trim().is_empty()) {
                return minted(token, &parsed, what);
            }
            let message = parsed.message.clone().unwrap_or_default();
            return Err(match kind {
                Reply::Mint => classify_mint_message(&message),
                Reply::Consume if parsed.status.as_deref() == Some("error") => {
                    DhanError::InvalidTokenId { message: clip(&message) }
                }
                Reply::Renew if parsed.status.as_deref() == Some("error") => {
                    DhanError::RenewRefused { message: clip(&message) }
                }
                _ => DhanError::Malformed { what, detail: "no accessToken in the reply".into() },
            });
        }
        let message = parsed.ok().and_then(|p| p.message).unwrap_or_default();
        // Live: RenewToken answers APP and consent tokens with HTTP 500 DH-905 "Renewal of token
        // not allowed for this token type". DH-905 there means "not renewable" at any status.
        if matches!(kind, Reply::Renew) && error_code(body).as_deref() == Some("DH-905") {
            return Err(match api_error(status, body) {
                DhanError::Api { message, .. } | DhanError::Upstream { message, .. } => {
                    DhanError::RenewRefused { message: fallback_text(message, "not renewable") }
                }
                other => other,
            });
        }
        match (kind, status) {
            (Reply::Mint | Reply::Consume, 401) if message.is_empty() => {
                Err(DhanError::BadCredentials { message: "Unauthorized".into() })
            }
            // An empty 403 is a WAF page, not Dhan's verdict on the credentials.
            (Reply::Mint | Reply::Consume, 401 | 403) if !message.is_empty() => {
                Err(DhanError::BadCredentials { message: clip(&message) })
            }
            (Reply::Consume, 400 | 404 | 410) => Err(DhanError::InvalidTokenId { message: clip(&message) }),
            (Reply::Renew, 400 | 403 | 405) => Err(match api_error(status, body) {
                DhanError::Api { message, .. } => DhanError::RenewRefused { message },
                other => other,
            }),
            (Reply::Mint, s) if (400..500).contains(&s) && s != 429 && !message.is_empty() => {
                Err(classify_mint_message(&message))
            }
            _ => Err(api_error(status, body)),
        }
    }
}

/// Whether this machine can send from `ip`: binds a UDP socket to it (nothing is sent, nothing
/// waits). `Err` says why not, in words for the trader.
pub fn bind_check(ip: IpAddr) -> Result<(), String> {
    match std::net::UdpSocket::bind((ip, 0)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Err(format!(
            "bind_address {ip} is not an address of this machine, so calls to Dhan cannot leave from it; add it \
             to a network interface or fix `bind_address` (see: ip -brief address)"
        )),
        Err(e) => Err(format!("cannot send from bind_address {ip}: {e}")),
    }
}

fn fallback_text(s: String, default: &str) -> String {
    if s.trim().is_empty() { default.to_string() } else { s }
}

/// Which token-issuing route a reply came from; they fail differently.
#[derive(Clone, Copy)]
enum Reply {
    Mint,
    Consume,
    Renew,
}

fn minted(token: String, parsed: &wire::TokenResponse, what: &'static str) -> Result<Minted, DhanError> {
    let claims = jwt::decode(&token);
    let from_body = parsed.expiry_time.as_ref().and_then(|v| match v {
        serde_json::Value::String(s) => ist::parse_naive_ist(s),
        // Epoch milliseconds, defensively.
        serde_json::Value::Number(n) => n.as_i64().and_then(DateTime::from_timestamp_millis).map(|t| ist::to_ist(&t)),
        _ => None,
    });
    let from_jwt = claims.as_ref().and_then(|c| c.expires_at()).map(|t| ist::to_ist(&t));
    let expires_at = match (from_body, from_jwt) {
        (Some(a), Some(b)) => {
            if (a - b).num_seconds().abs() > 120 {
                tracing::warn!(expiry_time = %a, jwt_exp = %b, "Dhan's expiryTime and the token's exp disagree; using the earlier");
            }
            a.min(b)
        }
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => {
            return Err(DhanError::Malformed { what, detail: "the token came without a readable expiryTime".into() });
        }
    };
    Ok(Minted {
        access_token: Secret::new(token),
        expires_at,
        client_id: parsed.dhan_client_id.clone().or_else(|| claims.and_then(|c| c.dhan_client_id)),
        client_name: parsed.dhan_client_name.clone(),
    })
}
