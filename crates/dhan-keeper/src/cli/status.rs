//! `status` and `token`: what the token file holds, without touching the network.

use std::process::ExitCode;

use serde_json::json;

use crate::clock::Clock;
use crate::config::Config;
use crate::ist;
use crate::token::{StoreError, Token, TokenStore};

/// `dhan-keeper status [--json]`. Exit 0 when a valid token is on disk, 1 otherwise.
pub fn status(cfg: &Config, clock: &dyn Clock, as_json: bool) -> ExitCode {
    let store = TokenStore::new(&cfg.token_file);
    let now = clock.now();
    let loaded = store.load();
    let (state, token, error) = match &loaded {
        Ok(Some(t)) if t.is_expired(now) => ("expired", Some(t), None),
        Ok(Some(t)) => ("valid", Some(t), None),
        Ok(None) => ("missing", None, None),
        Err(e @ StoreError::Corrupt { .. }) => ("corrupt", None, Some(e.to_string())),
        Err(e) => ("unreadable", None, Some(e.to_string())),
    };
    if as_json {
        let v = json!({
            "token_file": store.path(),
            "state": state,
            "mode": match cfg.mode() { crate::config::Mode::Automatic => "automatic", crate::config::Mode::Consent => "consent" },
            "client_id": token.and_then(|t| t.client_id.clone()),
            "expires_at": token.map(|t| ist::to_ist(&t.expires_at).to_rfc3339()),
            "expiry_time": token.map(|t| ist::naive_string(&t.expires_at)),
            "seconds_left": token.map(|t| t.remaining(now).num_seconds().max(0)),
            "obtained_at": token.and_then(|t| t.obtained_at.map(|o| o.to_rfc3339())),
            "source": token.and_then(|t| t.source.map(|s| s.to_string())),
            "error": error,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!("Token file  {}", store.path().display());
        println!("Mode        {}", cfg.mode());
        match (state, token) {
            ("valid", Some(t)) => print_token(t, "✅ valid", ist::human_duration(t.remaining(now)) + " left"),
            ("expired", Some(t)) => {
                print_token(t, "❌ expired", format!("{} ago", ist::human_duration(-t.remaining(now))));
            }
            ("missing", _) => {
                println!("State       ⚪ no token yet; run `dhan-keeper refresh` (automatic mode) or start the bot")
            }
            _ => println!("State       ❌ {state}: {}", error.unwrap_or_default()),
        }
    }
    if state == "valid" { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn print_token(t: &Token, state: &str, left: String) {
    println!("State       {state} ({left})");
    println!("Expires     {} ({})", ist::human(&t.expires_at), ist::to_ist(&t.expires_at).to_rfc3339());
    if let Some(o) = &t.obtained_at {
        let via = t.source.map(|s| format!(" via {s}")).unwrap_or_default();
        println!("Obtained    {}{via}", ist::human(o));
    }
    if let Some(c) = &t.client_id {
        println!("Client      {c}");
    }
}

/// `dhan-keeper token`: prints the access token for scripts; exit 1 when there is none usable.
pub fn token(cfg: &Config, clock: &dyn Clock) -> ExitCode {
    let store = TokenStore::new(&cfg.token_file);
    match store.load() {
        Ok(Some(t)) if !t.is_expired(clock.now()) => {
            println!("{}", t.access_token.expose());
            ExitCode::SUCCESS
        }
        Ok(Some(t)) => {
            eprintln!(
                "error: the token in {} expired at {}; run `dhan-keeper refresh` or check the daemon",
                store.path().display(),
                ist::human(&t.expires_at)
            );
            ExitCode::FAILURE
        }
        Ok(None) => {
            eprintln!("error: no token in {}; run `dhan-keeper refresh` first", store.path().display());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
