//! The one-shot subcommands. Each prints for a human on stdout and returns the exit code.
//!
//! Exit codes: 0 success, 1 the thing asked for is not there or failed (no token, expired, Dhan
//! refused), 2 bad configuration or usage.

mod calendar;
mod check;
mod refresh;
mod status;

use std::process::ExitCode;

pub use calendar::calendar;
pub use check::check;
pub use refresh::refresh;
pub use status::{status, token};

use crate::clock::Clock;
use crate::config::Config;
use crate::dhan::{DhanClient, DhanError};

/// Builds the Dhan client the config describes.
pub fn dhan_client(cfg: &Config) -> Result<DhanClient, DhanError> {
    DhanClient::new(cfg.dhan_auth_url.clone(), cfg.dhan_api_url.clone(), cfg.client_id.clone(), cfg.dhan_timeout)
}

/// `dhan-keeper totp`: the current code and its seconds left.
pub fn totp(cfg: &Config, clock: &dyn Clock) -> ExitCode {
    let Some(secret) = &cfg.totp_secret else {
        eprintln!("error: `totp_secret` is not set in the config, so there is no code to show");
        return ExitCode::from(2);
    };
    let code = secret.code_at(clock.now());
    println!("{}  ({}s left)", code.digits, code.secs_left);
    ExitCode::SUCCESS
}
