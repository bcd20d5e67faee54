//! The `dhan-keeper` binary: parse arguments, load config, start logging, call the library.

#[cfg(feature = "demo")]
mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dhan_keeper::clock::SystemClock;
use dhan_keeper::config::{Config, ConfigError};
use dhan_keeper::{app, cli, telemetry};

/// Keeps your Dhan API access token alive, and tells you on Telegram before anything goes wrong.
#[derive(Parser)]
#[command(name = "dhan-keeper", version, about, long_about = None)]
struct Args {
    /// Config file [default: $DHAN_KEEPER_CONFIG, else ./dhan_config.json]
    #[arg(long, short, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// The account to act on, by label, when the config lists several [env: DHAN_KEEPER_ACCOUNT,
    /// except for `run`, which keeps every account unless --account is given]
    #[arg(long, short, global = true, value_name = "LABEL")]
    account: Option<String>,
    /// Log line format on stderr (filter with RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: telemetry::LogFormat,
    /// Time zone of log timestamps (IST is written with its +05:30 offset).
    #[arg(long, global = true, value_enum, default_value_t)]
    log_time: telemetry::LogTime,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    WithConfig(ConfigCommand),
    /// Show the saved token's state and what the daemon knows about it (no network). Exit 0 only
    /// when it is valid and Dhan has not rejected it.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        file: TokenFileArg,
    },
    /// Print the saved access token for scripts. Exit 1 when there is none, it expired, or Dhan
    /// rejected it.
    Token {
        #[command(flatten)]
        file: TokenFileArg,
    },
    /// List the accounts the config describes (labels, client ids, token files), no network.
    Accounts,
    /// Write a private (0600) config template to --config [default: ./dhan_config.json]. Never
    /// overwrites.
    Init,
    /// Run the whole flow against a built-in simulator: no credentials, no network.
    #[cfg(feature = "demo")]
    Demo {
        /// Be the trader: type bot commands and see the replies (same simulators, no script).
        #[arg(long, short)]
        interactive: bool,
    },
    /// Print a shell completion script: `dhan-keeper completions bash > /etc/bash_completion.d/dhan-keeper`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The commands that act on a user's configuration.
#[derive(Subcommand)]
enum ConfigCommand {
    /// Keep the token alive: rotate before expiry, alert on Telegram, answer commands. Runs until
    /// SIGTERM or Ctrl-C.
    Run,
    /// Validate the config, reach Dhan, and measure this machine's clock against Dhan's.
    Check,
    /// Mint a new token now with TOTP + PIN and save it (kills the previous token).
    Refresh,
    /// Print the current TOTP code and its seconds left.
    Totp,
    /// List exchange sessions and closed days (IST) from the built-in calendar and `calendar_file`.
    Calendar {
        /// equity, commodity, currency, a comma list, or all [default: the segments of market_hours]
        #[arg(long, value_name = "S")]
        segment: Option<String>,
        /// First day, IST [default: today]
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: Option<String>,
        /// How many days to list.
        #[arg(long, value_name = "N", default_value_t = 14)]
        days: u32,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Keepers sharing this client id through Redis (`redis_url`; see docs/fleet.md).
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
    },
}

/// `fleet` subcommands.
#[derive(Subcommand)]
enum FleetCommand {
    /// Every node, its role and last catch-up, the lease holder and the shared token's generation
    /// and expiry (read from Redis; the token itself is never shown).
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `--token-file`: read the token file directly, without the config (and its secrets).
#[derive(clap::Args)]
struct TokenFileArg {
    /// The token file; the config is then not read at all, so a user who may not read the
    /// secrets can still run this [env: DHAN_KEEPER_TOKEN_FILE]
    #[arg(long, value_name = "PATH", env = "DHAN_KEEPER_TOKEN_FILE", hide_env = true)]
    token_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    quiet_broken_pipe();
    let args = Args::parse();
    // The demo prints its own transcript (outages included, on purpose); only errors go to the log.
    #[cfg(feature = "demo")]
    let default_filter = if matches!(args.command, Command::Demo { .. }) { "error" } else { "warn,dhan_keeper=info" };
    #[cfg(not(feature = "demo"))]
    let default_filter = "warn,dhan_keeper=info";
    telemetry::init(args.log_format, args.log_time, default_filter);
    // No core dumps (they would hold every secret), and descriptors to spare (see `harden`).
    let limits = dhan_keeper::harden::process_limits();
    tracing::debug!(?limits, "process limits");
    if !limits.core_off && cfg!(unix) {
        tracing::warn!(
            "could not turn core dumps off; a crash dump would hold the secrets (set LimitCORE=0 / ulimit -c 0)"
        );
    }
    // The account for the one-account commands: --account, else DHAN_KEEPER_ACCOUNT.
    let account = args.account.clone().or_else(|| std::env::var("DHAN_KEEPER_ACCOUNT").ok().filter(|a| !a.is_empty()));
    match args.command {
        #[cfg(feature = "demo")]
        Command::Demo { interactive } => block_on(demo::run(interactive)),
        Command::Completions { shell } => {
            // Into a buffer first: the generator panics on a write error such as a closed pipe.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut <Args as clap::CommandFactory>::command(), "dhan-keeper", &mut script);
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write the completion script: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Init => cli::init(args.config.as_deref()),
        Command::Accounts => match Config::load_accounts(args.config) {
            Ok(accounts) => cli::accounts(&accounts),
            Err(e) => config_error(e),
        },
        Command::Status { json, file } => match targets(file, args.config, account.as_deref(), true) {
            Ok(t) => cli::status(&t, &SystemClock, json),
            Err(code) => code,
        },
        Command::Token { file } => match targets(file, args.config, account.as_deref(), false) {
            Ok(t) => t.first().map_or(ExitCode::from(2), |t| cli::token(t, &SystemClock)),
            Err(code) => code,
        },
        // Only an explicit --account narrows `run`: DHAN_KEEPER_ACCOUNT, exported for the CLI's
        // convenience, must never leave the family's other accounts unkept.
        Command::WithConfig(ConfigCommand::Run) => match Config::load_accounts(args.config) {
            Ok(accounts) => match only(accounts, args.account.as_deref()) {
                Ok(accounts) => {
                    for w in &accounts.warnings {
                        tracing::warn!("{w}");
                    }
                    block_on(run_daemon(accounts))
                }
                Err(code) => code,
            },
            Err(e) => config_error(e),
        },
        Command::WithConfig(ConfigCommand::Calendar { segment, from, days, json }) => {
            // The calendar is shared: any account's config has it.
            match load_shared(args.config) {
                Ok(cfg) => {
                    warn_once(&cfg);
                    cli::calendar(&cfg, &SystemClock, segment.as_deref(), from.as_deref(), days, json)
                }
                Err(code) => code,
            }
        }
        Command::WithConfig(command) => match load(args.config, account.as_deref()) {
            Ok(cfg) => run(command, &cfg),
            Err(code) => code,
        },
    }
}

/// The one account a command acts on: `--account LABEL`, or the only one.
fn load(path: Option<PathBuf>, account: Option<&str>) -> Result<Config, ExitCode> {
    let accounts = Config::load_accounts(path).map_err(config_error)?;
    match accounts.select(account) {
        Ok(a) => {
            let mut cfg = a.config.clone();
            cfg.warnings = accounts.warnings.clone();
            Ok(cfg)
        }
        Err(e) => Err(usage_error(&e)),
    }
}

/// The keys every account shares (the first account's config, which carries them all).
fn load_shared(path: Option<PathBuf>) -> Result<Config, ExitCode> {
    let accounts = Config::load_accounts(path).map_err(config_error)?;
    let mut cfg = accounts.list.first().map(|a| a.config.clone()).ok_or(ExitCode::from(2))?;
    cfg.warnings = accounts.warnings;
    Ok(cfg)
}

/// `run --account LABEL` keeps that one account; `run` alone keeps them all.
fn only(
    mut accounts: dhan_keeper::config::Accounts,
    account: Option<&str>,
) -> Result<dhan_keeper::config::Accounts, ExitCode> {
    let all = accounts.labels().join(", ");
    let Some(label) = account else {
        if accounts.listed {
            tracing::info!(accounts = %all, "keeping every account of the config");
        }
        return Ok(accounts);
    };
    let chosen = accounts.select(Some(label)).map_err(|e| usage_error(&e))?.clone();
    if accounts.list.len() > 1 {
        tracing::warn!(
            kept = %chosen.label,
            of = %all,
            "keeping only this account (--account); the others are not kept by this process"
        );
    }
    accounts.list = vec![chosen];
    Ok(accounts)
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message} (use --account LABEL; `dhan-keeper accounts` lists them)");
    ExitCode::from(2)
}

fn config_error(e: ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    match e {
        ConfigError::Unreadable { .. } => ExitCode::FAILURE,
        _ => ExitCode::from(2),
    }
}

/// The token files `status`/`token` look at: `--token-file` as given, else the config's: the
/// `--account` one, or (when `all` is allowed, for `status`) every account's.
fn targets(
    file: TokenFileArg,
    config: Option<PathBuf>,
    account: Option<&str>,
    all: bool,
) -> Result<Vec<cli::Target>, ExitCode> {
    if let Some(token_file) = file.token_file {
        return Ok(vec![cli::Target { token_file, mode: None, label: None }]);
    }
    let accounts = Config::load_accounts(config).map_err(config_error)?;
    for w in &accounts.warnings {
        tracing::warn!("{w}");
    }
    let chosen: Vec<&dhan_keeper::config::AccountConfig> = match (account, all) {
        (None, true) => accounts.list.iter().collect(),
        _ => vec![accounts.select(account).map_err(|e| usage_error(&e))?],
    };
    let label = |a: &dhan_keeper::config::AccountConfig| accounts.listed.then(|| a.label.to_string());
    Ok(chosen
        .into_iter()
        .map(|a| cli::Target { token_file: a.config.token_file.clone(), mode: Some(a.config.mode()), label: label(a) })
        .collect())
}

fn warn_once(cfg: &Config) {
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
}

/// `dhan-keeper check | head -1`: once the reader has gone, stop quietly. Rust ignores SIGPIPE,
/// so a write to a closed pipe fails and `println!` panics (an abort in the release build); this
/// turns exactly that panic into a quiet exit, as a SIGPIPE would have been.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if msg.contains("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn run(command: ConfigCommand, cfg: &Config) -> ExitCode {
    // `check` prints the warnings itself; logging them as well would say everything twice.
    if !matches!(command, ConfigCommand::Check) {
        warn_once(cfg);
    }
    let clock = SystemClock;
    match command {
        ConfigCommand::Run => block_on(run_daemon(dhan_keeper::config::Accounts::one(cfg.clone()))),
        ConfigCommand::Check => block_on(cli::check(cfg, &clock)),
        ConfigCommand::Totp => cli::totp(cfg, &clock),
        ConfigCommand::Calendar { segment, from, days, json } => {
            cli::calendar(cfg, &clock, segment.as_deref(), from.as_deref(), days, json)
        }
        ConfigCommand::Fleet { command: FleetCommand::Status { json } } => {
            block_on(cli::fleet_status(cfg, &clock, json))
        }
        ConfigCommand::Refresh => block_on(async {
            cli::refresh(cfg, &clock).await.unwrap_or_else(|e| {
                eprintln!("error: {}", each_cause_once(&e));
                ExitCode::FAILURE
            })
        }),
    }
}

async fn run_daemon(accounts: dhan_keeper::config::Accounts) -> ExitCode {
    let mut signals = app::Signals::install();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let clock: dhan_keeper::clock::SharedClock = std::sync::Arc::new(SystemClock);
    let started = tokio::select! {
        r = app::start_accounts(accounts, clock, shutdown.clone()) => r,
        () = signals.recv() => {
            tracing::info!("stopped while starting");
            return ExitCode::SUCCESS;
        }
    };
    let running = match started {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    signals.recv().await;
    tracing::info!("stopping");
    shutdown.cancel();
    running.join().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Runs `work` on a single-threaded runtime, built only by the commands that do network I/O, so
/// `status`, `token` and `totp` start no threads at all.
fn block_on(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(work),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, each printed once: a message that already quotes its cause (`cannot
/// read token file X: Permission denied`) is not followed by the cause again.
fn each_cause_once(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
