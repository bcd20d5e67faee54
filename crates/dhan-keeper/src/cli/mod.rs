//! The one-shot subcommands. Each prints for a human on stdout and returns the exit code.
//!
//! Exit codes: 0 success, 1 the thing asked for is not there or failed (no token, expired, Dhan
//! refused), 2 bad configuration or usage.

mod accounts;
mod calendar;
mod check;
mod fleet;
mod preflight;
mod refresh;
mod status;

use std::process::ExitCode;

pub use accounts::accounts;
pub use calendar::calendar;
pub use check::check;
pub use fleet::fleet_status;
pub use refresh::refresh;
pub use status::{Target, status, token};

use crate::clock::Clock;
use crate::config::Config;
use crate::dhan::{DhanClient, DhanError};

/// Builds the Dhan client the config describes.
pub fn dhan_client(cfg: &Config) -> Result<DhanClient, DhanError> {
    DhanClient::bound(
        cfg.dhan_auth_url.clone(),
        cfg.dhan_api_url.clone(),
        cfg.client_id.clone(),
        cfg.dhan_timeout,
        cfg.bind_address,
    )
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

/// Prints a line on stdout. A closed pipe (`dhan-keeper check | head -1`) ends the process
/// quietly through the binary's panic hook, like a SIGPIPE would.
pub(crate) fn out(line: &str) {
    println!("{line}");
}

/// The config template `init` writes: every key with its default, placeholders to fill in.
pub const CONFIG_TEMPLATE: &str = include_str!("config_template.json");

/// `dhan-keeper init`: writes [`CONFIG_TEMPLATE`] to `path` (default `./dhan_config.json`) with
/// mode 0600, and refuses to overwrite anything.
pub fn init(path: Option<&std::path::Path>) -> ExitCode {
    let path = path.map(std::path::Path::to_path_buf).unwrap_or_else(|| {
        std::env::var_os("DHAN_KEEPER_CONFIG").map(Into::into).unwrap_or_else(|| "dhan_config.json".into())
    });
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let written = open.open(&path).and_then(|mut f| std::io::Write::write_all(&mut f, CONFIG_TEMPLATE.as_bytes()));
    match written {
        Ok(()) => {
            out(&format!("Wrote {} (mode 0600: it will hold your PIN and TOTP secret).", path.display()));
            out(
                "Next: replace every YOUR_… value (README → Set-up), then `dhan-keeper check`, then `dhan-keeper run`.",
            );
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!("error: {} already exists; init never overwrites a config (move it away first)", path.display());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}
