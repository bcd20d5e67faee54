//! Getting a new token: renew where Dhan renews, else mint behind the gate; consent and paste.
//!
//! RenewToken is only for Dhan Web (`SELF`) tokens: live, an `APP` token (TOTP-minted or consent)
//! gets HTTP 500 DH-905, which is "not renewable", not an outage. So an `APP` token is never sent
//! there, and a pasted `SELF` token is renewed (staying `SELF`, which the 200-level depth feed
//! needs) for as long as Dhan allows. A mint goes through [`crate::gate`]: Dhan's window counted
//! from the last attempt or refusal, and the credential stop after Dhan refuses the PIN.

use chrono::Utc;

use super::{Keeper, RotateError, is_web_token};
use crate::dhan::{DhanError, Minted};
use crate::gate::{self, Asker, Gate};
use crate::ist;
use crate::mint::mint_with_totp;
use crate::state::CredentialStop;
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
        }
        self.mint(why, asker).await
    }

    async fn mint(&self, why: &str, asker: Asker) -> Result<Token, RotateError> {
        let (Some(pin), Some(totp)) = (&self.cfg.pin, &self.cfg.totp_secret) else {
            return Err(RotateError::NeedsLogin);
        };
        let now = self.clock.now();
        self.forget_future_attempt(now);
        let config_id = self.cfg.credentials_id();
        self.gate_allows(now, &config_id, asker)?;
        // Persisted before the request, so a kill -9 mid-call still counts the attempt.
        self.state.update(|s| s.last_mint_at = Some(ist::to_ist(&now)));
        tracing::info!(why, "minting a new token with TOTP + PIN");
        let result = mint_with_totp(&self.dhan, pin, totp, self.clock.as_ref()).await;
        // The window runs from the last attempt as Dhan saw it: the answer's arrival.
        let end = self.clock.now();
        self.state.update(|s| s.last_mint_at = Some(ist::to_ist(&end)));
        match result {
            Ok(minted) => self.accept(minted, TokenSource::Totp, why),
            Err(e) => Err(self.mint_failed(e, end, config_id)),
        }
    }

    /// Dhan's window and the credential stop, as the gate decides them for `asker`.
    fn gate_allows(&self, now: chrono::DateTime<Utc>, config_id: &str, asker: Asker) -> Result<(), RotateError> {
        let state = self.state.get();
        match gate::mint_gate(&state, now, self.cfg.mint_cooldown, config_id, asker) {
            Gate::Open => Ok(()),
            Gate::Window { until } => Err(RotateError::Cooldown {
                until,
                cooldown: self.cfg.mint_cooldown,
                refused: false,
                credentials: gate::credential_stop(&state, config_id).map(|s| s.message.clone()),
            }),
            Gate::CredentialsRefused(stop) => {
                Err(RotateError::CredentialsStopped { at: stop.at, message: stop.message })
            }
        }
    }

    /// What a failed mint means: a wait (Dhan's window, restarted by the refusal), a credential
    /// stop (a refused PIN, or two attempts' TOTP codes refused), or a failure to retry.
    fn mint_failed(&self, e: DhanError, end: chrono::DateTime<Utc>, config_id: String) -> RotateError {
        match e {
            DhanError::MintCooldown { .. } => {
                let until = end + super::chrono(self.cfg.mint_cooldown);
                tracing::warn!(
                    next_attempt = %ist::human_secs(&ist::to_ist(&until)),
                    "Dhan refused the mint: inside its one-token window, which a refusal restarts; waiting the full mint_cooldown"
                );
                RotateError::Cooldown { until, cooldown: self.cfg.mint_cooldown, refused: true, credentials: None }
            }
            DhanError::InvalidTotp => {
                self.set_live(|l| l.totp_refusals += 1);
                if self.live().totp_refusals < 2 {
                    return DhanError::InvalidTotp.into();
                }
                // Four codes over two attempts refused: a wrong totp_secret (or a clock far off),
                // not a window edge. Retrying sends the PIN again and again; stop like a wrong PIN.
                let message = "Dhan refused the TOTP codes of two attempts in a row (\"Invalid TOTP\"): totp_secret is \
                               probably not the one set up on Dhan Web, or this machine's clock is off (dhan-keeper check)"
                    .to_string();
                self.stop_minting(end, message, config_id)
            }
            DhanError::BadCredentials { message } => self.stop_minting(end, message, config_id),
            e => e.into(),
        }
    }

    /// Records a credential stop: automatic minting waits for a changed config or the admin.
    fn stop_minting(&self, end: chrono::DateTime<Utc>, message: String, config_id: String) -> RotateError {
        tracing::error!(%message, "Dhan refused the credentials; automatic minting stops until the config changes or the admin asks for a token");
        self.state.update(|s| {
            s.credentials_refused = Some(CredentialStop { at: ist::to_ist(&end), message: message.clone(), config_id });
        });
        DhanError::BadCredentials { message }.into()
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
        Ok(self.dhan.consent_login_url(&consent).to_string())
    }

    /// Whether the current token is a Dhan Web (`SELF`) token.
    pub fn holds_web_token(&self) -> bool {
        self.token().is_some_and(|t| is_web_token(&t))
    }
}
