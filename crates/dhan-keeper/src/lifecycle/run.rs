//! One pass of the loop and the loop itself: snapshot, ask the [`planner`](crate::planner),
//! perform the one action that is due, ask again.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{Keeper, MAX_NAP, RotateError};
use crate::alerts;
use crate::config::Mode;
use crate::gate::{self, Asker};
use crate::ist;
use crate::planner::{self, Action, Cadence, Snapshot, Usable};
use crate::policy::AlertStep;
use crate::state::Alerted;

impl Keeper {
    /// The planner's view of this keeper now.
    pub(crate) fn snapshot(&self, now: DateTime<Utc>) -> Snapshot {
        let live = self.live();
        let state = self.state.get();
        let usable = self.usable_token();
        let ladder_expiry = self.token().filter(|_| !live.revoked).map(|t| t.expires_at.with_timezone(&Utc));
        Snapshot {
            now,
            mode: self.cfg.mode(),
            paused: state.paused,
            unsaved: live.unsaved,
            usable: usable
                .as_ref()
                .map(|t| Usable { expires_at: t.expires_at.with_timezone(&Utc), renewable: self.can_renew(t) }),
            ladder_expiry,
            last_verify: live.last_verify,
            suspect_since: live.suspect.as_ref().map(|s| s.last_at),
            ip_checked_at: live.ip_checked_at,
            failures: live.failures,
            last_failure_at: live.last_failure_at,
            gate: gate::mint_gate(&state, now, self.cfg.mint_cooldown, &self.config_id, Asker::Schedule),
            alerts_enabled: self.alert_chat().is_some(),
            alert_sent: state
                .alerted
                .filter(|a| a.expires_at.map(|e| e.with_timezone(&Utc)) == ladder_expiry)
                .map(|a| a.step),
        }
    }

    fn cadence(&self) -> Cadence {
        Cadence {
            verify_every: self.cfg.verify_every,
            reprobe_after: self.cfg.reprobe_after,
            ip_check_every: super::verify::IP_CHECK_EVERY,
        }
    }

    /// One pass of the loop: do what is due, return when to look again.
    pub async fn step(&self) -> DateTime<Utc> {
        self.heal_file();
        let now = self.clock.now();
        self.forget_future_attempt(now);
        let snapshot = self.snapshot(now);
        let plan = planner::plan(&snapshot, &self.policy, &self.cadence());
        self.set_live(|l| {
            l.next_rotation = plan.next_rotation;
            l.next_alert = plan.next_alert;
        });
        if let Some(due) = plan.next_rotation.filter(|_| !snapshot.paused) {
            self.warn_if_gap(due);
        }
        match plan.action {
            None => return plan.wake,
            Some(Action::Verify) => self.verify().await,
            Some(Action::CheckIp) => self.check_ip().await,
            Some(Action::Rotate) => match self.rotate("scheduled", Asker::Schedule).await {
                Ok(_) | Err(RotateError::NeedsLogin | RotateError::Suspect) => {}
                Err(RotateError::NotLeader { retry_at, .. }) => return retry_at,
                Err(RotateError::Cooldown { until, refused: true, .. }) => self.on_refusal(until),
                Err(RotateError::Cooldown { refused: false, .. }) => {}
                Err(e) => self.record_failure(&e),
            },
            Some(Action::Alert(step)) => {
                let expires = snapshot.ladder_expiry;
                self.send_expiry_alert(step, expires, now, self.live().last_error.as_deref()).await;
                self.state.update(|s| s.alerted = Some(Alerted { expires_at: expires.map(|e| ist::to_ist(&e)), step }));
            }
        }
        self.clock.now()
    }

    /// Dhan refused a mint inside its window: said at once in the log (by `mint`), and on
    /// Telegram when the trader is left without a usable token until the next attempt.
    fn on_refusal(&self, until: DateTime<Utc>) {
        self.metrics.failure("cooldown_refused");
        let token = self.usable_token();
        let needed = token.as_ref().is_none_or(|t| t.expires_at.with_timezone(&Utc) <= until);
        if needed {
            self.alert(alerts::mint_refused(self.cfg.mint_cooldown, until), vec![]);
        }
    }

    /// A planned attempt after the current token's expiry is a gap the trader must hear about
    /// (once per token), whatever caused it.
    fn warn_if_gap(&self, due: DateTime<Utc>) {
        let Some(tok) = self.usable_token() else { return };
        let expires = tok.expires_at.with_timezone(&Utc);
        if due <= expires || self.live().gap_alerted_for == Some(tok.expires_at) {
            return;
        }
        tracing::warn!(
            next_attempt = %ist::human_secs(&ist::to_ist(&due)),
            expires_at = %ist::human_secs(&tok.expires_at),
            "the next attempt to get a token comes after the current one expires"
        );
        self.set_live(|l| l.gap_alerted_for = Some(tok.expires_at));
        self.alert(alerts::gap(due, expires), vec![alerts::refresh_button(self.cfg.mode())]);
    }

    async fn send_expiry_alert(
        &self,
        step: AlertStep,
        expires: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        last_error: Option<&str>,
    ) {
        let mode = self.cfg.mode();
        let (url, buttons) = match mode {
            Mode::Consent => {
                let url = match self.login_url().await {
                    Ok(u) => Some(u),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not get a login link for the alert");
                        None
                    }
                };
                let mut b = alerts::login_buttons(url.as_deref(), self.cfg.totp_secret.is_some());
                b.push(alerts::refresh_button(mode));
                (url, b)
            }
            Mode::Automatic => (None, vec![alerts::refresh_button(mode)]),
        };
        tracing::info!(?step, "sending expiry alert");
        let text = alerts::expiry(step, mode, expires, now, last_error, url.as_deref());
        self.alert(text, buttons);
    }
}

/// Runs the loop until `shutdown`.
pub async fn run(keeper: Arc<Keeper>, shutdown: CancellationToken) {
    loop {
        // Shutdown abandons a step mid-call: every await in it is a network call or a sleep, and
        // a token Dhan has returned is saved synchronously before the next await. In a fleet a
        // request already sent may still mint at Dhan, so the step gets `dhan_timeout` to finish
        // (and its token to be taken in) before the lease is released.
        let step = keeper.step();
        tokio::pin!(step);
        let wake_at = tokio::select! {
            _ = shutdown.cancelled() => {
                if keeper.coordinator().is_fleet() {
                    let _ = tokio::time::timeout(keeper.cfg.dhan_timeout + Duration::from_secs(1), step).await;
                }
                return;
            }
            w = &mut step => w,
        };
        let nap = (wake_at - keeper.clock.now()).to_std().unwrap_or(Duration::ZERO);
        let nap = nap.clamp(Duration::from_millis(20), MAX_NAP);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = keeper.wake.notified() => {}
            _ = tokio::time::sleep(nap) => {}
        }
    }
}
