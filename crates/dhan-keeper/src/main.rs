//! The `dhan-keeper` binary: parse arguments, load config, start logging, call the library.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dhan_keeper::clock::SystemClock;
use dhan_keeper::config::{Config, ConfigError};
use dhan_keeper::{cli, telemetry};

/// Keeps your Dhan API access token alive, and tells you on Telegram before anything goes wrong.
#[derive(Parser)]
#[command(name = "dhan-keeper", version, about, long_about = None)]
struct Args {
    /// Config file [default: $DHAN_KEEPER_CONFIG, else ./dhan_config.json]
    #[arg(long, short, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Log line format on stderr (filter with RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config, reach Dhan, and measure this machine's clock against Dhan's.
    Check,
    /// Show the saved token's state (no network). Exit 0 only when it is valid.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the saved access token for scripts. Exit 1 when there is none or it expired.
    Token,
    /// Mint a new token now with TOTP + PIN and save it (kills the previous token).
    Refresh,
    /// Print the current TOTP code and its seconds left.
    Totp,
    /// Run the whole flow against a built-in simulator: no credentials, no network.
    Demo,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let quiet_default = "warn,dhan_keeper=info";
    telemetry::init(args.log_format, quiet_default);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Demo = args.command {
        return runtime.block_on(demo::run());
    }
    let cfg = match Config::load(args.config) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("error: {e}");
            return match e {
                ConfigError::Unreadable { .. } => ExitCode::FAILURE,
                _ => ExitCode::from(2),
            };
        }
    };
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let clock = SystemClock;
    match args.command {
        Command::Check => runtime.block_on(cli::check(&cfg, &clock)),
        Command::Status { json } => cli::status(&cfg, &clock, json),
        Command::Token => cli::token(&cfg, &clock),
        Command::Totp => cli::totp(&cfg, &clock),
        Command::Refresh => match runtime.block_on(cli::refresh(&cfg, &clock)) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Demo => ExitCode::SUCCESS,
    }
}
