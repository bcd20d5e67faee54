//! Getting a new token with TOTP + PIN, the way that survives Dhan's sharp edges.
//!
//! Codes with under 2 s left are not sent (the next window's code is used instead), and an
//! "Invalid TOTP" is retried exactly once with a fresh code from the next window, because a code
//! can go stale between being computed and being checked. Anything else goes back to the caller.

use std::time::Duration;

use crate::clock::Clock;
use crate::dhan::{DhanClient, DhanError, Minted};
use crate::secret::Secret;
use crate::token::{StoreError, Token, TokenSource, TokenStore};
use crate::totp::TotpSecret;

/// Why a new token did not end up in the token file.
#[derive(Debug, thiserror::Error)]
pub enum MintSaveError {
    /// Dhan did not issue a token.
    #[error("could not mint a new token")]
    Dhan(#[from] DhanError),
    /// Dhan issued a token that cannot be taken (another account's, or already expired).
    #[error("{0}")]
    Refused(#[from] crate::token::Refused),
    /// The token was issued (so the previous one is dead) but could not be written; it is
    /// handed back so the caller can keep it.
    #[error("the new token could not be saved (the old one is already dead at Dhan): {source}")]
    Store {
        /// Why the write failed.
        source: StoreError,
        /// The token Dhan issued, the only live one.
        token: Box<Token>,
    },
}

/// Mints with TOTP + PIN, checks the token is for this client, and saves it: the one path every
/// caller (the `refresh` command, the demo, the daemon) takes to a new automatic token.
pub async fn mint_and_save(
    client: &DhanClient,
    pin: &Secret,
    totp: &TotpSecret,
    store: &TokenStore,
    clock: &dyn Clock,
) -> Result<Token, MintSaveError> {
    let minted = mint_with_totp(client, pin, totp, clock, || async { true }).await?;
    let token = Token::accept(minted, client.client_id(), TokenSource::Totp, clock.now())?;
    match store.save(&token) {
        Ok(()) => Ok(token),
        Err(source) => Err(MintSaveError::Store { source, token: Box::new(token) }),
    }
}

/// Mints a token with `generateAccessToken`, retrying once on "Invalid TOTP" in the next TOTP
/// window if `may_retry` still says yes then.
#[tracing::instrument(skip_all)]
pub async fn mint_with_totp<F, Fut>(
    client: &DhanClient,
    pin: &Secret,
    totp: &TotpSecret,
    clock: &dyn Clock,
    may_retry: F,
) -> Result<Minted, DhanError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let code = totp.code_for_submission(clock.now());
    match client.generate_access_token(pin, &code.digits).await {
        Err(DhanError::InvalidTotp) => {
            // Wait for the next window (recomputed from the clock, not from the old code).
            let left = totp.code_at(clock.now()).secs_left;
            tracing::info!(wait_secs = left + 1, "Dhan refused the TOTP code; retrying once in the next window");
            tokio::time::sleep(Duration::from_secs(u64::try_from(left + 1).unwrap_or(1))).await;
            // Whoever asked may have lost the right to mint meanwhile (a fleet lease).
            if !may_retry().await {
                return Err(DhanError::InvalidTotp);
            }
            let fresh = totp.code_for_submission(clock.now());
            client.generate_access_token(pin, &fresh.digits).await
        }
        other => other,
    }
}
