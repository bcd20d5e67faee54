//! One pass of the loop and the loop itself: check, renew or mint, alert, sleep.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{Keeper, MAX_NAP, RotateError, chrono};
use crate::alerts;
use crate::config::Mode;
use crate::gate::{self, Asker, Gate};
use crate::ist;
use crate::policy::{self, AlertStep};
use crate::state::Alerted;

impl Keeper {
    /// When the next rotation is due, or `None` when none is planned (consent mode with a token
    /// Dhan does not renew, or automatic minting stopped after a credential refusal).
    pub(crate) fn rotation_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let usable = self.usable_token();
        let renew = usable.as_ref().is_some_and(|t| self.can_renew(t));
        let state = self.state.get();
        let gate = gate::mint_gate(&state, now, self.cfg.mint_cooldown, &self.cfg.credentials_id(), Asker::Schedule);
        if !renew && (self.cfg.mode() == Mode::Consent || matches!(gate, Gate::CredentialsRefused(_))) {
            return None;
        }
        let expires = usable.as_ref().map(|t| t.expires_at.with_timezone(&Utc));
        let mut due = policy::next_rotation(now, expires, None, &self.policy);
        if let Some(retry) = self.next_retry_fixed(&self.live()) {
            due = due.max(retry);
        }
        if let (false, Gate::Window { until }) = (renew, gate) {
            due = due.max(until);
        }
        Some(due)
    }

    /// One pass of the loop: do what is due, return when to look again.
    pub async fn step(&self) -> DateTime<Utc> {
        self.heal_file();
        let now = self.clock.now();
        self.forget_future_attempt(now);
        let mut wake = now + chrono(if self.live().unsaved { Duration::from_secs(1) } else { MAX_NAP });
        if self.state.get().paused {
            self.set_live(|l| {
                l.next_rotation = None;
                l.next_alert = None;
            });
            return wake;
        }

        // The plan is known before anything is checked, so /status never shows a blank.
        let due = self.rotation_due(now);
        self.set_live(|l| l.next_rotation = due);

        // 1. Is the token alive (and, while a rejection is being confirmed, still)?
        if let Some(due) = self.verify_due(now) {
            if due <= now {
                self.verify().await;
                return self.clock.now();
            }
            wake = wake.min(due);
        }
        // 2. Will Dhan take orders from here?
        if let Some(due) = self.ip_check_due(now) {
            if due <= now {
                self.check_ip().await;
                return self.clock.now();
            }
            wake = wake.min(due);
        }

        // 3. Rotation.
        if let Some(due) = due {
            self.warn_if_gap(due);
            if due <= now {
                match self.rotate("scheduled", Asker::Schedule).await {
                    Ok(_) | Err(RotateError::NeedsLogin | RotateError::Suspect) => {}
                    Err(RotateError::Cooldown { until, refused: true, .. }) => self.on_refusal(until),
                    Err(RotateError::Cooldown { refused: false, .. }) => {}
                    Err(e) => self.record_failure(&e),
                }
                return self.clock.now();
            }
            wake = wake.min(due);
        }

        // 4. The alert ladder.
        self.ladder(now, &mut wake).await;
        wake
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

    /// The expiry alert ladder: always in consent mode; in automatic mode once rotation has
    /// failed or minting is stopped.
    async fn ladder(&self, now: DateTime<Utc>, wake: &mut DateTime<Utc>) {
        let live = self.live();
        let automatic = self.cfg.mode() == Mode::Automatic;
        let stopped = gate::credential_stop(&self.state.get(), &self.cfg.credentials_id()).is_some();
        // The ladder follows the current token even once it has expired; a revoked or missing
        // token is "no token" (one alert).
        let expires = self.token().filter(|_| !live.revoked).map(|t| t.expires_at.with_timezone(&Utc));
        if self.alert_chat().is_some() && (!automatic || live.failures > 0 || stopped) {
            let sent = self.state.get().alerted.filter(|a| a.expires_at.map(|e| e.with_timezone(&Utc)) == expires);
            let sent_step = sent.map(|a| a.step);
            let step = match expires {
                Some(exp) => policy::alert_due(now, exp, sent_step, &self.policy),
                None => (sent_step.is_none()).then_some(AlertStep::Expired),
            };
            if let Some(step) = step {
                self.send_expiry_alert(step, expires, now, live.last_error.as_deref()).await;
                self.state.update(|s| s.alerted = Some(Alerted { expires_at: expires.map(|e| ist::to_ist(&e)), step }));
            }
            let next = expires.and_then(|exp| policy::next_alert_at(exp, step.or(sent_step), &self.policy));
            self.set_live(|l| l.next_alert = next);
            if let Some(n) = next {
                *wake = (*wake).min(n);
            }
        } else {
            let next = expires.and_then(|exp| policy::next_alert_at(exp, None, &self.policy)).filter(|_| !automatic);
            self.set_live(|l| l.next_alert = next);
        }
        if let Some(exp) = expires.filter(|e| *e > now) {
            *wake = (*wake).min(exp);
        }
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
        // a token Dhan has returned is saved synchronously before the next await.
        let wake_at = tokio::select! {
            _ = shutdown.cancelled() => return,
            w = keeper.step() => w,
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
