//! `dhan-keeper refresh`: one automatic mint now, under the lock.

use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::clock::Clock;
use crate::config::{Config, Mode};
use crate::ist;
use crate::mint::mint_and_save;
use crate::token::{InstanceLock, StoreError, Token, TokenSource, TokenStore};

/// Mints a token with TOTP + PIN and saves it. The previous token dies at Dhan the moment the new
/// one is issued, so this is refused while another dhan-keeper holds the lock.
pub async fn refresh(cfg: &Config, clock: &dyn Clock) -> anyhow::Result<ExitCode> {
    let (Mode::Automatic, Some(pin), Some(totp)) = (cfg.mode(), &cfg.pin, &cfg.totp_secret) else {
        bail!(
            "`refresh` mints with TOTP + PIN, but `pin` is not set; add it for automatic mode, or in consent mode \
             send /refresh to the Telegram bot while `dhan-keeper run` is going"
        );
    };
    let lock_path = cfg.lock_file();
    let _lock = InstanceLock::acquire(&lock_path, "refresh")?;
    let store = TokenStore::for_config(cfg);
    let now = clock.now();
    let previous = match store.load() {
        Ok(t) => t,
        Err(e @ StoreError::Corrupt { .. }) => {
            let aside = store.set_aside(now)?;
            tracing::warn!(error = %e, kept_at = %aside.display(), "set the corrupt token file aside");
            None
        }
        Err(e) => {
            return Err(e).context("the current token file is unusable; fix its permissions first");
        }
    };
    if let Some(Token { source: Some(TokenSource::Totp), obtained_at: Some(at), .. }) = &previous {
        let at = at.with_timezone(&chrono::Utc);
        let wait = at + chrono::Duration::from_std(cfg.mint_cooldown).unwrap_or_default() - now;
        if wait > chrono::Duration::zero() {
            bail!(
                "the last token was minted {} ago and Dhan allows one every 2 minutes; try again in {}s",
                ist::human_duration(now - at),
                wait.num_seconds() + 1
            );
        }
    }
    let client = super::dhan_client(cfg)?;
    let token = mint_and_save(&client, pin, totp, &store, clock).await?;
    let left = ist::human_duration(token.remaining(clock.now()));
    println!("✅ New token saved to {}", store.path().display());
    println!("   expires {} (in {left})", ist::human(&token.expires_at));
    if previous.is_some_and(|p| !p.is_expired(now)) {
        println!("   the previous token is now invalid at Dhan; programs holding it must re-read the token file");
    }
    Ok(ExitCode::SUCCESS)
}
