//! Is the token still alive, and will Dhan take orders from here?
//!
//! One rejection of a token that should be alive is a suspicion, not a verdict: live, tokens were
//! rejected once soon after a mint and accepted again (reference §8b.4), and a mint on a false
//! alarm kills the token every trading program holds. So a rejection is re-probed
//! [`REPROBES`](super::REPROBES) times, `reprobe_after` apart (seconds, not minutes), before the
//! token is called revoked and replaced; nothing is minted or alerted meanwhile.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Keeper, REPROBES, Suspicion};
use crate::alerts;
use crate::dhan::{DhanError, FundLimit, Holding, IpStatus, Position};
use crate::ist;
use crate::token::Token;

/// How often `GET /v2/ip/getIP` is asked while a token is live (and after every new token).
pub const IP_CHECK_EVERY: Duration = Duration::from_secs(6 * 3600);

impl Keeper {
    /// Checks the token with `/v2/profile`. A rejection starts or advances a suspicion; an
    /// acceptance clears it. The first check after start is the saved token's.
    pub async fn verify(&self) {
        let Some(tok) = self.usable_token() else { return };
        let first = self.live().last_verify.is_none();
        let result = match self.dhan.profile(&tok.access_token).await {
            Ok(p) if !p.dhan_client_id.is_empty() && p.dhan_client_id != self.cfg.client_id => {
                Err(DhanError::AuthFailed { message: "Dhan says the token belongs to another client id".into() })
            }
            other => other,
        };
        let now = self.clock.now();
        match result {
            Ok(_) => {
                if first {
                    tracing::info!(
                        expires_at = %ist::human(&tok.expires_at),
                        left = %ist::human_duration(tok.remaining(now)),
                        "reusing the saved token (Dhan accepts it)"
                    );
                }
                self.record_health(&tok, true);
                if let Some(s) = self.live().suspect {
                    tracing::info!(
                        rejections = s.rejections,
                        "Dhan accepts the token again: the rejection was transient; nothing replaced"
                    );
                    self.metrics.failure("transient_rejection");
                }
                self.set_live(|l| {
                    l.dhan_reachable = Some(true);
                    l.last_verify = Some(now);
                    l.suspect = None;
                });
            }
            Err(DhanError::AuthFailed { message }) => self.note_rejection(&tok, &message),
            Err(e) => {
                tracing::warn!(error = %e, "could not check the token with Dhan");
                self.set_live(|l| {
                    l.dhan_reachable = Some(false);
                    l.last_verify = Some(now);
                    if let Some(s) = &mut l.suspect {
                        s.last_at = now;
                    }
                });
            }
        }
    }

    /// Dhan rejected `tok` (on any route). Counts towards revocation if `tok` is still current.
    pub(crate) fn note_rejection(&self, tok: &Token, message: &str) {
        if self.token().is_none_or(|t| t.access_token.expose() != tok.access_token.expose()) {
            return;
        }
        let now = self.clock.now();
        let prior = self.live().suspect;
        // Already suspected: the scheduled re-probe decides, not a burst of other calls.
        if prior.as_ref().is_some_and(|s| now < s.last_at + super::chrono(self.cfg.reprobe_after)) {
            return;
        }
        let rejections = prior.as_ref().map_or(0, |s| s.rejections) + 1;
        if rejections <= REPROBES {
            tracing::warn!(
                %message,
                rejections,
                "Dhan rejected a token that should be alive; checking again in {} before replacing it",
                humantime::format_duration(self.cfg.reprobe_after)
            );
            let first_at = prior.map_or(now, |s| s.first_at);
            // `status` and `token` must not call it valid while it is being re-checked.
            self.record_health(tok, false);
            self.set_live(|l| {
                l.suspect = Some(Suspicion { rejections, first_at, last_at: now, message: message.to_string() });
                l.dhan_reachable = Some(true);
                l.last_verify = Some(now);
            });
            self.wake();
            return;
        }
        let first_at = prior.map_or(now, |s| s.first_at);
        tracing::warn!(
            %message,
            rejections,
            over = %ist::human_duration(now - first_at),
            "Dhan keeps rejecting the token: it was replaced elsewhere or revoked"
        );
        self.record_health(tok, false);
        self.set_live(|l| {
            l.revoked = true;
            l.suspect = None;
            l.dhan_reachable = Some(true);
            l.last_verify = Some(now);
        });
        self.metrics.failure("revoked");
        let next = match self.cfg.mode() {
            crate::config::Mode::Automatic => Some(self.cooldown_until(now).unwrap_or(now)),
            crate::config::Mode::Consent => None,
        };
        self.alert(alerts::revoked(self.cfg.mode(), rejections, now - first_at, next), vec![]);
        self.wake();
    }

    /// Asks Dhan whether orders from this machine are allowed; tells the admin once per IST day
    /// when they are not.
    pub async fn check_ip(&self) {
        let Some(tok) = self.usable_token() else { return };
        let result = self.dhan.ip_status(&tok.access_token).await;
        let now = self.clock.now();
        let report = match &result {
            Ok(s) => Ok(s.clone()),
            Err(e) => Err(e.to_string()),
        };
        let first = self.live().ip_checked_at.is_none();
        self.set_live(|l| {
            l.ip = Some(report);
            l.ip_checked_at = Some(now);
        });
        match result {
            Ok(s) if s.orders_refused() => self.warn_orders_refused(&s, now),
            Ok(s) if first => tracing::info!(static_ip = %s.summary(), "Dhan's static IP check"),
            Ok(_) => {}
            Err(DhanError::AuthFailed { message }) => self.note_rejection(&tok, &message),
            Err(e) => tracing::info!(error = %e, "could not read the static IP setup from Dhan"),
        }
    }

    fn warn_orders_refused(&self, s: &IpStatus, now: DateTime<Utc>) {
        tracing::warn!(static_ip = %s.summary(), "Dhan will refuse API orders from this machine");
        let today = ist::to_ist(&now).date_naive();
        if self.state.get().ip_alerted_on == Some(today) {
            return;
        }
        self.state.update(|st| st.ip_alerted_on = Some(today));
        self.alert(alerts::orders_refused(s), vec![]);
    }

    /// Funds, holdings and positions for `/account`; `None` without a usable token. A rejection
    /// of the token counts towards revocation like any other.
    pub async fn account(&self) -> Option<Result<(FundLimit, Vec<Holding>, Vec<Position>), DhanError>> {
        let token = self.usable_token()?;
        let t = &token.access_token;
        let (funds, holdings, positions) =
            tokio::join!(self.dhan.fund_limit(t), self.dhan.holdings(t), self.dhan.positions(t));
        let result = (|| Ok((funds?, holdings?, positions?)))();
        if let Err(DhanError::AuthFailed { message }) = &result {
            self.note_rejection(&token, message);
        }
        Some(result)
    }
}
