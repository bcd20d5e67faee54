//! One consistent picture of a keeper for everything that reports on it: `/status`, `/start`,
//! `/healthz`. Read at one instant under the keeper's locks, it carries no secret (the token is
//! summarised by its expiry and source), so renderers are pure functions of a [`View`] and are
//! tested as text.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use super::{Keeper, Suspicion};
use crate::config::{MarketChoice, Mode};
use crate::dhan::IpStatus;
use crate::state::{Attempt, CredentialStop};
use crate::token::TokenSource;

/// The token, without its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSummary {
    /// When it dies.
    pub expires_at: DateTime<FixedOffset>,
    /// How it was obtained, when known.
    pub source: Option<TokenSource>,
    /// When it was obtained, when known.
    pub obtained_at: Option<DateTime<FixedOffset>>,
}

/// Everything a reply about this keeper may show.
#[derive(Debug, Clone)]
pub struct View {
    /// The instant the view was taken.
    pub now: DateTime<Utc>,
    /// Automatic or consent.
    pub mode: Mode,
    /// The configured client id.
    pub client_id: String,
    /// When the ladder starts (for the 🟡 mark).
    pub alert_before: Duration,
    /// The current token, if any.
    pub token: Option<TokenSummary>,
    /// Dhan rejected it repeatedly.
    pub revoked: bool,
    /// Dhan rejected it, being re-checked.
    pub suspect: Option<Suspicion>,
    /// Failed attempts in a row.
    pub failures: u32,
    /// The token file could not be written.
    pub unsaved: bool,
    /// Outcome of the last call to Dhan's api host.
    pub dhan_reachable: Option<bool>,
    /// What `getIP` said last.
    pub ip: Option<Result<IpStatus, String>>,
    /// `/pause`d.
    pub paused: bool,
    /// The last attempt to get a token.
    pub last_attempt: Option<Attempt>,
    /// Automatic minting stopped after Dhan refused the credentials.
    pub credential_stop: Option<CredentialStop>,
    /// When the next rotation is planned.
    pub next_rotation: Option<DateTime<Utc>>,
    /// When the next ladder alert is due.
    pub next_alert: Option<DateTime<Utc>>,
    /// The next exchange session, when the calendar decides market hours.
    pub next_session: Option<String>,
    /// Who leads the fleet, when there is one.
    pub fleet: Option<super::FleetView>,
}

impl View {
    /// Whether the token can be used now: present, unexpired, not revoked.
    pub fn usable(&self) -> bool {
        self.token.as_ref().is_some_and(|t| t.expires_at > self.now && !self.revoked)
    }
}

impl Keeper {
    /// The view of this keeper now.
    pub fn view(&self) -> View {
        let now = self.clock.now();
        let live = self.live();
        let state = self.state.get();
        let next_session = match self.cfg.market_hours {
            Some(MarketChoice::Segments(segs)) => {
                Some(crate::calendar::next_session_line(&self.cfg.calendar, segs, now))
            }
            _ => None,
        };
        View {
            now,
            mode: self.cfg.mode(),
            client_id: self.cfg.client_id.clone(),
            alert_before: self.cfg.alert_before,
            token: self.token().map(|t| TokenSummary {
                expires_at: t.expires_at,
                source: t.source,
                obtained_at: t.obtained_at,
            }),
            revoked: live.revoked,
            suspect: live.suspect,
            failures: live.failures,
            unsaved: live.unsaved,
            dhan_reachable: live.dhan_reachable,
            ip: live.ip,
            paused: state.paused,
            credential_stop: crate::gate::credential_stop(&state, &self.config_id).cloned(),
            last_attempt: state.last_attempt,
            next_rotation: live.next_rotation,
            next_alert: live.next_alert,
            next_session,
            fleet: self.fleet_view(),
        }
    }
}
