//! Dhan's JSON bodies, spelled as on the wire (including `availabelBalance`).
//!
//! Every field is optional or defaulted: Dhan's live replies differ from its docs (abbreviated
//! `activeSegment`, missing `mtf` on sandbox, `lastTradedPrice` only sometimes), and a missing
//! field must not turn into a failed `/account`. All numbers are `f64`: Dhan writes `113642` where
//! the docs say float.

use serde::{Deserialize, Serialize};

/// The body of a successful `generateAccessToken`, `consumeApp-consent` or `RenewToken`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct TokenResponse {
    pub dhan_client_id: Option<String>,
    pub dhan_client_name: Option<String>,
    #[serde(alias = "token")]
    pub access_token: Option<String>,
    pub expiry_time: Option<serde_json::Value>,
    pub status: Option<String>,
    pub message: Option<String>,
}

/// `generate-consent`'s body.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ConsentResponse {
    pub consent_app_id: Option<String>,
    pub status: Option<String>,
    pub message: Option<String>,
}

/// `GET /v2/profile`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Profile {
    /// Client id the token belongs to.
    pub dhan_client_id: String,
    /// `DD/MM/YYYY HH:mm`, IST.
    pub token_validity: String,
    /// Active segments (`"E, D, C, M, "` on production).
    pub active_segment: String,
    /// DDPI status.
    pub ddpi: String,
    /// MTF status.
    pub mtf: String,
    /// Data API plan status.
    pub data_plan: String,
    /// Data API plan validity.
    pub data_validity: String,
}

/// `GET /v2/fundlimit`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct FundLimit {
    /// Available to trade (Dhan's spelling).
    #[serde(rename = "availabelBalance", alias = "availableBalance")]
    pub available_balance: f64,
    /// Start-of-day limit.
    #[serde(rename = "sodLimit")]
    pub sod_limit: f64,
    /// Against collateral.
    #[serde(rename = "collateralAmount")]
    pub collateral_amount: f64,
    /// Utilised today.
    #[serde(rename = "utilizedAmount")]
    pub utilized_amount: f64,
    /// Withdrawable to the bank.
    #[serde(rename = "withdrawableBalance")]
    pub withdrawable_balance: f64,
}

/// One row of `GET /v2/holdings`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Holding {
    /// Symbol.
    pub trading_symbol: String,
    /// Exchange.
    pub exchange: String,
    /// Total quantity (T1 + delivered).
    pub total_qty: f64,
    /// Average buy price.
    pub avg_cost_price: f64,
    /// Last traded price, when Dhan sends it.
    pub last_traded_price: Option<f64>,
}

impl Holding {
    /// Value at cost.
    pub fn cost_value(&self) -> f64 {
        self.total_qty * self.avg_cost_price
    }

    /// Value at the last traded price, or at cost when Dhan sent none.
    pub fn value(&self) -> f64 {
        self.total_qty * self.last_traded_price.unwrap_or(self.avg_cost_price)
    }
}

/// One row of `GET /v2/positions`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Position {
    /// Symbol.
    pub trading_symbol: String,
    /// `LONG`, `SHORT`, `CLOSED`.
    pub position_type: String,
    /// e.g. `NSE_EQ`.
    pub exchange_segment: String,
    /// e.g. `CNC`, `INTRADAY`.
    pub product_type: String,
    /// Net quantity; 0 means closed.
    pub net_qty: f64,
    /// Realised P&L.
    pub realized_profit: f64,
    /// Unrealised P&L.
    pub unrealized_profit: f64,
}
