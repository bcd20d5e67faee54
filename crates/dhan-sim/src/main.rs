//! `dhan-sim`: run the Dhan simulator by hand.
//!
//! `dhan-sim [PORT] [TOKEN_LIFETIME_SECS] [MINT_COOLDOWN_SECS]` prints the base URL and the
//! simulated account's credentials, then serves until Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use dhan_sim::{DhanSim, SimConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("usage: dhan-sim [PORT] [TOKEN_LIFETIME_SECS] [MINT_COOLDOWN_SECS]");
        return ExitCode::SUCCESS;
    }
    let num = |i: usize, default: u64| -> Result<u64, String> {
        args.get(i)
            .map_or(Ok(default), |s| s.parse().map_err(|_| format!("argument {} must be a number, got {s:?}", i + 1)))
    };
    let (port, lifetime, cooldown) = match (num(0, 0), num(1, 86_400), num(2, 120)) {
        (Ok(p), Ok(l), Ok(c)) => (p, l, c),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
            eprintln!("error: {e}; usage: dhan-sim [PORT] [TOKEN_LIFETIME_SECS] [MINT_COOLDOWN_SECS]");
            return ExitCode::from(2);
        }
    };
    let Ok(port) = u16::try_from(port) else {
        eprintln!("error: port must be 0-65535");
        return ExitCode::from(2);
    };
    let config = SimConfig {
        token_lifetime: Duration::from_secs(lifetime),
        mint_cooldown: Duration::from_secs(cooldown),
        ..SimConfig::default()
    };
    let sim = match DhanSim::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), config.clone()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("dhan-sim listening on {}", sim.url());
    println!("  client_id   {}", config.client_id);
    println!("  pin         {}", config.pin);
    println!("  totp_secret {}", config.totp_secret);
    println!("  api_key     {}  api_secret {}", config.api_key, config.api_secret);
    println!("  admin API   {}/__sim/state", sim.url());
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
