//! Getting a new token with TOTP + PIN, the way that survives Dhan's sharp edges.
//!
//! Codes with under 2 s left are not sent (the next window's code is used instead), and an
//! "Invalid TOTP" is retried exactly once with a fresh code from the next window, because a code
//! can go stale between being computed and being checked. Anything else goes back to the caller.

use std::time::Duration;

use crate::clock::Clock;
use crate::dhan::{DhanClient, DhanError, Minted};
use crate::secret::Secret;
use crate::totp::TotpSecret;

/// Mints a token with `generateAccessToken`, retrying once on "Invalid TOTP".
#[tracing::instrument(skip_all)]
pub async fn mint_with_totp(
    client: &DhanClient,
    pin: &Secret,
    totp: &TotpSecret,
    clock: &dyn Clock,
) -> Result<Minted, DhanError> {
    let code = totp.code_for_submission(clock.now());
    match client.generate_access_token(pin, &code.digits).await {
        Err(DhanError::InvalidTotp) => {
            // Wait for the next window (recomputed from the clock, not from the old code).
            let left = totp.code_at(clock.now()).secs_left;
            tracing::info!(wait_secs = left + 1, "Dhan refused the TOTP code; retrying once in the next window");
            tokio::time::sleep(Duration::from_secs(u64::try_from(left + 1).unwrap_or(1))).await;
            let fresh = totp.code_for_submission(clock.now());
            client.generate_access_token(pin, &fresh.digits).await
        }
        other => other,
    }
}
