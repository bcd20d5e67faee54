//! What the simulated Dhan account looks like and which unverified behaviours it picks.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How `RenewToken` treats tokens minted by API or consent (`tokenConsumerType: APP`). Dhan
/// documents renewal for Dhan-Web tokens only; live reports (Sep–Oct 2026) show HTTP 500 DH-905.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RenewApp {
    /// Renew like a web token.
    Succeed,
    /// 401 DH-901.
    Dh901,
    /// 400 DH-905 "only supported for tokens generated from Dhan Web" (the first edition's guess).
    Dh905,
    /// 500 `INVALID_REQUEST` DH-905 "Renewal of token not allowed for this token type" (the
    /// default: what four live reports saw).
    Dh905Http500,
}

/// How a token replaced by a newer one answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Superseded {
    /// 401 DH-901.
    Dh901,
    /// 400 DH-906 "Invalid Token" (the default: live reports and Dhan's catalogue say 400).
    Dh906,
    /// 401 DH-906 "Invalid Token" (the first edition's guess at the status).
    Dh906Http401,
}

/// One check on `POST /app/generateAccessToken`. The real order is unknown, so it is a knob
/// ([`SimConfig::mint_check_order`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MintCheck {
    /// `dhanClientId`, `pin`, `totp` present, else 400 DH-905.
    Params,
    /// `Content-Type: application/json` on the (empty) body: DH-905 (when
    /// [`SimConfig::reject_json_content_type`]).
    ContentType,
    /// The one-mint-per-window rule.
    Cooldown,
    /// Client id and PIN.
    Credentials,
    /// The TOTP code.
    Totp,
}

/// The default order of checks on the mint route: cheap request shape first, then the window
/// (a refusal that reveals nothing about the credentials), then credentials, then the code.
pub const DEFAULT_MINT_CHECK_ORDER: [MintCheck; 5] =
    [MintCheck::Params, MintCheck::ContentType, MintCheck::Cooldown, MintCheck::Credentials, MintCheck::Totp];

/// The account's static IP setup, as `GET /v2/ip/getIP` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StaticIp {
    /// The primary whitelisted address ("" = none set).
    pub primary_ip: String,
    /// The secondary whitelisted address ("" = none set).
    pub secondary_ip: String,
    /// When the primary was last changed (`YYYY-MM-DD`).
    pub modify_date_primary: String,
    /// When the secondary was last changed.
    pub modify_date_secondary: String,
}

impl Default for StaticIp {
    fn default() -> Self {
        Self {
            primary_ip: "127.0.0.1".into(),
            secondary_ip: String::new(),
            modify_date_primary: "2026-04-01".into(),
            modify_date_secondary: String::new(),
        }
    }
}

/// Another Dhan client the same simulator serves: Dhan is one pair of hosts for every client,
/// and a family's accounts (each its own client id, PIN, TOTP secret, API key, static IP) all
/// talk to it. Each client has its own tokens, mint window, consents, rate limit and account
/// data; the behaviour knobs of [`SimConfig`] apply to all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimClient {
    /// The client id.
    pub client_id: String,
    /// Its PIN.
    pub pin: String,
    /// Its TOTP secret, base32.
    pub totp_secret: String,
    /// API key (`app_id`).
    pub api_key: String,
    /// API secret (`app_secret`).
    pub api_secret: String,
    /// Account holder's name.
    pub client_name: String,
    /// Its static IP setup (`GET /v2/ip/getIP`).
    pub static_ip: StaticIp,
}

impl SimClient {
    /// A client with this id and credentials derived from it (PIN `654321`, API key
    /// `sim-api-key-<id>`, secret `sim-api-secret-<id>`), the default TOTP secret and static IP;
    /// change any field before starting.
    pub fn new(client_id: &str) -> Self {
        Self {
            client_id: client_id.into(),
            api_key: format!("sim-api-key-{client_id}"),
            api_secret: format!("sim-api-secret-{client_id}"),
            ..Self::default()
        }
    }

    /// The credentials (and name) a client's settings hold; its static IP lives in its account
    /// data, not in [`SimConfig`], so it is the default here.
    pub fn credentials_of(c: &SimConfig) -> Self {
        Self {
            client_id: c.client_id.clone(),
            pin: c.pin.clone(),
            totp_secret: c.totp_secret.clone(),
            api_key: c.api_key.clone(),
            api_secret: c.api_secret.clone(),
            client_name: c.client_name.clone(),
            static_ip: StaticIp::default(),
        }
    }
}

impl Default for SimClient {
    fn default() -> Self {
        let id = "1000000002";
        Self {
            client_id: id.into(),
            pin: "654321".into(),
            totp_secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into(),
            api_key: format!("sim-api-key-{id}"),
            api_secret: format!("sim-api-secret-{id}"),
            client_name: "SIM FAMILY MEMBER".into(),
            static_ip: StaticIp::default(),
        }
    }
}

/// Simulator settings. [`SimConfig::default`] is a plausible account with Dhan's real limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// The account's client id.
    pub client_id: String,
    /// Its PIN.
    pub pin: String,
    /// Its TOTP secret, base32.
    pub totp_secret: String,
    /// API key (`app_id`).
    pub api_key: String,
    /// API secret (`app_secret`).
    pub api_secret: String,
    /// Account holder's name.
    pub client_name: String,
    /// Token lifetime (Dhan: 24 h).
    #[serde(with = "secs")]
    pub token_lifetime: Duration,
    /// Minimum gap between successful `generateAccessToken` calls (Dhan: 2 min).
    #[serde(with = "secs")]
    pub mint_cooldown: Duration,
    /// TOTP windows accepted either side of now (Dhan: assumed 1).
    pub totp_skew: u8,
    /// Where the consent login redirects with `?tokenId=`.
    pub redirect_url: String,
    /// RenewToken for APP tokens.
    pub renew_app: RenewApp,
    /// How superseded tokens answer.
    pub superseded: Superseded,
    /// The message for a wrong PIN or unknown client (unverified).
    pub bad_credentials_message: String,
    /// Requests per second allowed on the api host's account routes (Dhan: 20).
    pub rate_limit_per_sec: u32,
    /// Consents allowed per day (Dhan: 25).
    pub consents_per_day: u32,
    /// Refuse requests without a User-Agent with a CloudFront-style 403.
    pub require_user_agent: bool,
    /// Sandbox behaviour: empty holdings as `200 []` instead of production's 500 DH-1111.
    pub sandbox_empty_holdings: bool,
    /// A mint refused inside the window restarts the window (live report, Aug 2026: default on).
    pub cooldown_rearms: bool,
    /// A mint refused for its PIN or TOTP also starts the window (unknown; default off).
    pub failed_mint_starts_window: bool,
    /// `Content-Type: application/json` on the mint's empty body earns DH-905 (live report).
    pub reject_json_content_type: bool,
    /// The order of checks on the mint route.
    pub mint_check_order: Vec<MintCheck>,
    /// The message `GET /v2/ip/getIP` answers with (`200 [{"message","status":"ERROR"}]`) when
    /// no static IP is set.
    pub ip_error_message: String,
    /// Further clients this simulator serves beside the one above (read when it starts).
    pub extra_clients: Vec<SimClient>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            client_id: "1000000001".into(),
            pin: "123456".into(),
            totp_secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into(),
            api_key: "sim-api-key".into(),
            api_secret: "sim-api-secret".into(),
            client_name: "ASHA TRADER".into(),
            token_lifetime: Duration::from_secs(24 * 3600),
            mint_cooldown: Duration::from_secs(120),
            totp_skew: 1,
            redirect_url: "http://127.0.0.1/dhan-callback".into(),
            renew_app: RenewApp::Dh905Http500,
            superseded: Superseded::Dh906,
            bad_credentials_message: "Login failed. Please retry with valid credentials.".into(),
            rate_limit_per_sec: 20,
            consents_per_day: 25,
            require_user_agent: false,
            sandbox_empty_holdings: false,
            cooldown_rearms: true,
            failed_mint_starts_window: false,
            reject_json_content_type: true,
            mint_check_order: DEFAULT_MINT_CHECK_ORDER.to_vec(),
            ip_error_message: "Static IP is not configured for this client".into(),
            extra_clients: Vec::new(),
        }
    }
}

/// Account data the api routes serve, as raw wire JSON so tests can set anything, odd or not.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Account {
    /// `/v2/profile` fields other than `dhanClientId` and `tokenValidity`.
    pub profile: Value,
    /// `/v2/fundlimit` body.
    pub fundlimit: Value,
    /// `/v2/holdings` rows; empty means DH-1111.
    pub holdings: Vec<Value>,
    /// `/v2/positions` rows.
    pub positions: Vec<Value>,
    /// The static IP setup behind `/v2/ip/getIP`.
    pub static_ip: StaticIp,
}

impl Default for Account {
    fn default() -> Self {
        Self {
            profile: json!({
                "activeSegment": "E, D, C, M, ",
                "ddpi": "Active",
                "mtf": "Active",
                "dataPlan": "Active",
                "dataValidity": "2026-12-05 09:37:52.0"
            }),
            fundlimit: json!({
                "dhanClientId": "1000000001",
                "availabelBalance": 98440.0,
                "sodLimit": 113642,
                "collateralAmount": 0.0,
                "receiveableAmount": 0.0,
                "utilizedAmount": 15202.0,
                "blockedPayoutAmount": 0.0,
                "withdrawableBalance": 98310.0
            }),
            holdings: vec![
                holding("HDFC", "1330", "INE001A01036", 1000, 2655.0),
                holding("TCS", "11536", "INE467B01029", 40, 3345.8),
                holding("INFY", "1594", "INE009A01021", 120, 1502.35),
            ],
            positions: vec![json!({
                "dhanClientId": "1000000001", "tradingSymbol": "TCS", "securityId": "11536",
                "positionType": "LONG", "exchangeSegment": "NSE_EQ", "productType": "CNC",
                "buyAvg": 3345.8, "buyQty": 40, "costPrice": 3215.0, "sellAvg": 0.0, "sellQty": 0,
                "netQty": 40, "realizedProfit": 0.0, "unrealizedProfit": 6122.0, "rbiReferenceRate": 1.0,
                "multiplier": 1, "carryForwardBuyQty": 0, "carryForwardSellQty": 0,
                "carryForwardBuyValue": 0.0, "carryForwardSellValue": 0.0, "dayBuyQty": 40,
                "daySellQty": 0, "dayBuyValue": 133832.0, "daySellValue": 0.0,
                "drvExpiryDate": "0001-01-01", "drvOptionType": null, "drvStrikePrice": 0.0,
                "crossCurrency": false
            })],
            static_ip: StaticIp::default(),
        }
    }
}

fn holding(symbol: &str, security_id: &str, isin: &str, qty: i64, avg: f64) -> Value {
    json!({
        "exchange": "ALL", "tradingSymbol": symbol, "securityId": security_id, "isin": isin,
        "totalQty": qty, "dpQty": qty, "t1Qty": 0, "availableQty": qty, "collateralQty": 0,
        "avgCostPrice": avg
    })
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}
