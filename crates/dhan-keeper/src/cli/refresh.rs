//! `dhan-keeper refresh`: one automatic mint now, under the lock.

use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::clock::Clock;
use crate::config::{Config, Mode};
use crate::dhan::DhanError;
use crate::gate::Asker;
use crate::ist;
use crate::lifecycle::{gate_error, mint_refused};
use crate::mint::{MintSaveError, mint_and_save};
use crate::state::StateFile;
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
    if cfg.fleet.is_some() {
        bail!(crate::config::CLI_REFRESH_IN_A_FLEET);
    }
    let lock_path = cfg.lock_file();
    let _lock = InstanceLock::acquire(&lock_path, "refresh")?;
    let store = TokenStore::for_config(cfg);
    let now = clock.now();
    let previous = previous_token(&store, now)?;
    let state = StateFile::load(StateFile::path_for(&cfg.token_file));
    let config_id = cfg.credentials_id();
    window_allows(cfg, &state, previous.as_ref(), &config_id, now)?;
    let client = super::dhan_client(cfg)?;
    state.update(|s| s.last_mint_at = Some(ist::to_ist(&now)));
    let result = mint_and_save(&client, pin, totp, &store, clock).await;
    let end = clock.now();
    state.update(|s| s.last_mint_at = Some(ist::to_ist(&end)));
    let token = match result {
        Ok(token) => {
            state.update(|s| {
                s.credentials_refused = None;
                s.alerted = None;
            });
            token
        }
        Err(MintSaveError::Dhan(e @ (DhanError::BadCredentials { .. } | DhanError::MintCooldown { .. }))) => {
            return Err(mint_refused(&state, e, end, cfg.mint_cooldown, &config_id).into());
        }
        Err(MintSaveError::Store { source, token }) => {
            // The old token died when Dhan issued this one: losing it too would leave nothing.
            eprintln!(
                "error: Dhan issued a new token (the old one is now dead) but it could not be saved: {source}\n\
                 It is printed on standard output so it is not lost; fix the problem above and put it where your \
                 programs read it. It expires {}.",
                ist::human(&token.expires_at)
            );
            println!("{}", token.access_token.expose());
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    let left = ist::human_duration(token.remaining(clock.now()));
    println!("✅ New token saved to {}", store.path().display());
    println!("   expires {} (in {left})", ist::human(&token.expires_at));
    if previous.is_some_and(|p| !p.is_expired(now)) {
        println!("   the previous token is now invalid at Dhan; programs holding it must re-read the token file");
    }
    Ok(ExitCode::SUCCESS)
}

/// The saved token (a corrupt file is set aside).
fn previous_token(store: &TokenStore, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<Option<Token>> {
    match store.load() {
        Ok(t) => Ok(t),
        Err(e @ StoreError::Corrupt { .. }) => {
            let aside = store.set_aside(now)?;
            tracing::warn!(error = %e, kept_at = %aside.display(), "set the corrupt token file aside");
            Ok(None)
        }
        Err(e) => Err(e).context("the current token file is unusable; fix its permissions first"),
    }
}

/// One window rule for the daemon and this command: the state file's last attempt (and, for
/// files written before it existed, the saved token's mint time). A wait names a credential
/// refusal, never hides it.
fn window_allows(
    cfg: &Config,
    state: &StateFile,
    previous: Option<&Token>,
    config_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let mut view = state.get();
    if let Some(Token { source: Some(TokenSource::Totp), obtained_at: Some(at), .. }) = previous {
        view.last_mint_at = view.last_mint_at.max(Some(*at));
    }
    Ok(gate_error(&view, now, cfg.mint_cooldown, config_id, Asker::Admin)?)
}
