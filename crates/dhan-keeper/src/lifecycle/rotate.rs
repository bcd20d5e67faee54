//! Getting a new token: renew where Dhan renews, else mint behind the gate; consent and paste.
//!
//! RenewToken is only for Dhan Web (`SELF`) tokens: live, an `APP` token (TOTP-minted or consent)
//! gets HTTP 500 DH-905, which is "not renewable", not an outage. So an `APP` token is never sent
//! there, and a pasted `SELF` token is renewed (staying `SELF`, which the 200-level depth feed
//! needs) for as long as Dhan allows. A mint goes through [`crate::gate`]: Dhan's window counted
//! from the last attempt or refusal, and the credential stop after Dhan refuses the PIN.

use chrono::Utc;

use std::time::Duration;

use super::fleet::Pass;
use super::{Keeper, RotateError};
use crate::dhan::{DhanError, Minted};
use crate::gate::{self, Asker, Gate};
use crate::ist;
use crate::mint::mint_with_totp;
use crate::state::{CredentialStop, DaemonState, StateFile};
use crate::token::{Token, TokenSource};

impl Keeper {
    /// Whether the loop would renew `token` rather than mint: Dhan renews it (by its claims),
    /// and has not refused this very token.
    pub(crate) fn can_renew(&self, token: &Token) -> bool {
        let renewable = crate::dhan::jwt::decode(token.access_token.expose()).is_none_or(|c| c.renewable());
        renewable && self.live().renew_refused_for != Some(token.expires_at)
    }

    /// Gets a new token now without a human: `RenewToken` for a live token Dhan renews, else
    /// (automatic mode) a TOTP + PIN mint behind the gate. `asker` says who wants it: only the
    /// schedule honours the credential stop.
    pub async fn rotate(&self, why: &str, asker: Asker) -> Result<Token, RotateError> {
        let _guard = self.work.lock().await;
        let pass = match self.fleet_gate(asker).await? {
            Pass::Adopted(shared) => return Ok(shared),
            pass => pass,
        };
        let now = self.clock.now();
        if let Some(tok) = self.usable_token().filter(|t| self.can_renew(t)) {
            match self.dhan.renew_token(&tok.access_token).await {
                Ok(minted) => return self.accept(minted, TokenSource::Renew, why),
                Err(DhanError::RenewRefused { message }) => {
                    tracing::info!(reason = %message, "Dhan does not renew this token; minting instead");
                    self.set_live(|l| l.renew_refused_for = Some(tok.expires_at));
                }
                Err(DhanError::AuthFailed { message }) => {
                    self.note_rejection(&tok, &message);
                    return Err(RotateError::Suspect);
                }
                Err(e) if tok.remaining(now) > super::chrono(self.cfg.final_alert_before) || self.cfg.pin.is_none() => {
                    return Err(e.into());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "RenewToken keeps failing and the token is about to expire; minting instead");
                }
            }
            // The renewal took time: the lease is confirmed again before the mint.
            self.still_leading(pass.clone()).await?;
        }
        self.mint(why, asker, pass).await
    }

    async fn mint(&self, why: &str, asker: Asker, pass: Pass) -> Result<Token, RotateError> {
        let (Some(pin), Some(totp)) = (&self.cfg.pin, &self.cfg.totp_secret) else {
            return Err(RotateError::NeedsLogin);
        };
        let now = self.clock.now();
        self.forget_future_attempt(now);
        let config_id = self.config_id.clone();
        gate_error(&self.state.get(), now, self.cfg.mint_cooldown, &config_id, asker)?;
        // Persisted before the request, so a kill -9 mid-call still counts the attempt.
        self.state.update(|s| s.last_mint_at = Some(ist::to_ist(&now)));
        tracing::info!(why, "minting a new token with TOTP + PIN");
        // The retry in the next TOTP window comes up to 31 s later: the lease is confirmed again.
        let still = || async move { self.still_leading(pass).await.is_ok() };
        let result = mint_with_totp(&self.dhan, pin, totp, self.clock.as_ref(), still).await;
        // The window runs from the last attempt as Dhan saw it: the answer's arrival.
        let end = self.clock.now();
        self.state.update(|s| s.last_mint_at = Some(ist::to_ist(&end)));
        match result {
            Ok(minted) => self.accept(minted, TokenSource::Totp, why),
            Err(e) => Err(self.mint_failed(e, end, config_id)),
        }
    }

    /// What a failed mint means. Two attempts in a row whose TOTP codes Dhan refused (four
    /// codes) are a wrong `totp_secret` or a clock far off, not a window edge: retrying sends the
    /// PIN again and again, so they stop minting like a wrong PIN. The rest is [`mint_refused`].
    fn mint_failed(&self, e: DhanError, end: chrono::DateTime<Utc>, config_id: String) -> RotateError {
        let e = match e {
            DhanError::InvalidTotp => {
                self.set_live(|l| l.totp_refusals += 1);
                if self.live().totp_refusals < 2 {
                    return DhanError::InvalidTotp.into();
                }
                DhanError::BadCredentials {
                    message: "Dhan refused the TOTP codes of two attempts in a row (\"Invalid TOTP\"): totp_secret is \
                              probably not the one set up on Dhan Web, or this machine's clock is off (dhan-keeper check)"
                        .to_string(),
                }
            }
            other => other,
        };
        mint_refused(&self.state, e, end, self.cfg.mint_cooldown, &config_id)
    }

    /// A last-attempt instant persisted in the future (the clock was ahead when it was written)
    /// is rewritten to now: it must not hold minting back for the size of the jump.
    pub(crate) fn forget_future_attempt(&self, now: chrono::DateTime<Utc>) {
        if gate::attempt_in_future(&self.state.get(), now) {
            tracing::warn!(
                "the saved time of the last mint attempt is in the future (the clock moved back); counting it as now"
            );
            self.state.update(|s| s.last_mint_at = Some(ist::to_ist(&now)));
        }
    }

    /// Consent mode, step 3: exchange a pasted tokenId for a token.
    pub async fn consume_token_id(&self, token_id: &str) -> Result<Token, RotateError> {
        let (Some(key), Some(secret)) = (&self.cfg.api_key, &self.cfg.api_secret) else {
            return Err(RotateError::NotConfigured("a tokenId needs api_key and api_secret in the config"));
        };
        let _guard = self.work.lock().await;
        let minted = self.dhan.consume_consent(token_id, key, secret).await?;
        self.accept(minted, TokenSource::Consent, "consent login")
    }

    /// Installs a pasted access token after `/v2/profile` confirms it is alive and ours.
    pub async fn install_pasted(&self, access_token: crate::secret::Secret) -> Result<Token, RotateError> {
        let _guard = self.work.lock().await;
        let profile = self.dhan.profile(&access_token).await?;
        let claims = crate::dhan::jwt::decode(access_token.expose());
        let from_profile = ist::parse_token_validity(&profile.token_validity);
        let from_jwt = claims.as_ref().and_then(|c| c.expires_at()).map(|t| ist::to_ist(&t));
        // The JWT's `exp` is exact; `tokenValidity` is cut to the minute, so only a fallback.
        let Some(expires_at) = from_jwt.or(from_profile) else {
            return Err(RotateError::Dhan(DhanError::Malformed {
                what: "profile",
                detail: "neither the token nor Dhan says when it expires".into(),
            }));
        };
        let client_id = Some(profile.dhan_client_id.clone()).filter(|c| !c.is_empty());
        let minted = Minted { access_token, expires_at, client_id, client_name: None };
        self.accept(minted, TokenSource::Manual, "pasted token")
    }

    /// Consent mode: a fresh login link (generates a consent at Dhan).
    pub async fn login_url(&self) -> Result<String, RotateError> {
        let (Some(key), Some(secret)) = (&self.cfg.api_key, &self.cfg.api_secret) else {
            return Err(RotateError::NotConfigured("the consent flow needs api_key and api_secret in the config"));
        };
        let consent = self.dhan.generate_consent(key, secret).await?;
        let now = self.clock.now();
        self.set_live(|l| l.login_sent_at = Some(now));
        Ok(self.dhan.consent_login_url(&consent).to_string())
    }
}

/// The gate's answer as the error to report, for the daemon and `dhan-keeper refresh` alike: a
/// wait names a credential refusal rather than hiding it.
pub(crate) fn gate_error(
    state: &DaemonState,
    now: chrono::DateTime<Utc>,
    cooldown: Duration,
    config_id: &str,
    asker: Asker,
) -> Result<(), RotateError> {
    match gate::mint_gate(state, now, cooldown, config_id, asker) {
        Gate::Open => Ok(()),
        Gate::Window { until } => Err(RotateError::Cooldown {
            until,
            cooldown,
            refused: false,
            credentials: gate::credential_stop(state, config_id).map(|s| s.message.clone()),
        }),
        Gate::CredentialsRefused(stop) => Err(RotateError::CredentialsStopped { at: stop.at, message: stop.message }),
    }
}

/// What Dhan's refusal of a mint (at `end`) means, for the daemon and `dhan-keeper refresh`
/// alike: inside the window, a wait of the full `cooldown` (a refusal restarts Dhan's window);
/// refused credentials, a persisted stop of automatic minting; anything else, as it is.
pub(crate) fn mint_refused(
    state: &StateFile,
    e: DhanError,
    end: chrono::DateTime<Utc>,
    cooldown: Duration,
    config_id: &str,
) -> RotateError {
    match e {
        DhanError::MintCooldown { .. } => {
            let until = end + super::chrono(cooldown);
            tracing::warn!(
                next_attempt = %ist::human_secs(&ist::to_ist(&until)),
                "Dhan refused the mint: inside its one-token window, which a refusal restarts; waiting the full mint_cooldown"
            );
            RotateError::Cooldown { until, cooldown, refused: true, credentials: None }
        }
        DhanError::BadCredentials { message } => {
            tracing::error!(%message, "Dhan refused the credentials; automatic minting stops until the config changes or the admin asks for a token");
            let stop =
                CredentialStop { at: ist::to_ist(&end), message: message.clone(), config_id: config_id.to_string() };
            state.update(|s| s.credentials_refused = Some(stop));
            DhanError::BadCredentials { message }.into()
        }
        other => other.into(),
    }
}
