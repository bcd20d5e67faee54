//! `dhan-keeper run`: take the lock, load and check the saved token, start Telegram, the HTTP
//! endpoint and the lifecycle loop, and stop them all on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::commands::{Bot, COMMANDS};
use crate::config::Config;
use crate::dhan::DhanError;
use crate::lifecycle::{self, Keeper};
use crate::telegram::{BotClient, Outbox, outbox, poller};
use crate::token::{InstanceLock, LockError, StoreError, Token, TokenStore};

/// Why `run` could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Another process holds the lock.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The token file exists but cannot be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Dhan(#[from] DhanError),
    /// The Telegram client could not be built.
    #[error(transparent)]
    Telegram(#[from] crate::telegram::TgError),
    /// `http_listen` could not be bound.
    #[error("cannot listen on http_listen {addr}: {source}; is another process using that port?")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What `run` started, for callers that want to talk to it (tests, the demo).
#[derive(Debug)]
pub struct Running {
    /// The keeper.
    pub keeper: Arc<Keeper>,
    /// Where the HTTP endpoint listens, if configured.
    pub http: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _lock: InstanceLock,
}

impl Running {
    /// Waits for every task to stop (after `shutdown` was cancelled).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts everything; returns once it is running. Cancel `shutdown` to stop it.
pub async fn start(cfg: Config, clock: SharedClock, shutdown: CancellationToken) -> Result<Running, AppError> {
    let lock = InstanceLock::acquire(&cfg.lock_file(), "dhan-keeper run")?;
    let dhan = crate::cli::dhan_client(&cfg)?;
    let store = TokenStore::for_config(&cfg);
    let (promoted, stale) = crate::token::recover_temps(&store, clock.now());
    if promoted {
        tracing::warn!("a newer token was found in a temp file left by an interrupted write; it is now the token file");
    }
    let stale = stale + crate::token::remove_stale_temps(&crate::state::StateFile::path_for(&cfg.token_file));
    if stale > 0 {
        tracing::info!(count = stale, "removed temp files left by an interrupted write");
    }
    let token = match store.load() {
        Ok(t) => t,
        Err(e @ StoreError::Corrupt { .. }) => {
            let aside = store.set_aside(clock.now())?;
            tracing::warn!(error = %e, aside = %aside.display(), "the token file was corrupt; kept it aside and will get a new token");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let token = token.filter(|t| belongs_to(t, &cfg));
    if let (Some(t), Some(problem)) = (&token, store.access_problem()) {
        // Rewriting makes it ours, with the configured mode and group (the rename replaces it).
        match store.save(t) {
            Ok(()) => {
                tracing::warn!(file = %store.path().display(), %problem, "the token file had the wrong owner or permissions; rewrote it")
            }
            Err(e) => {
                tracing::warn!(file = %store.path().display(), %problem, error = %e, "the token file has the wrong owner or permissions and could not be rewritten")
            }
        }
    }

    let mut tasks = Vec::new();
    let telegram = match (&cfg.telegram_bot_token, cfg.telegram_chat_id) {
        (Some(bot_token), Some(_)) => Some(BotClient::new(&cfg.telegram_api_url, bot_token)?),
        _ => None,
    };
    let (outbox, rx) = match &telegram {
        Some(_) => {
            let (o, rx) = Outbox::new();
            (o, Some(rx))
        }
        None => (Outbox::disabled(), None),
    };
    // The saved token is checked with Dhan by the loop's first pass (`Keeper::verify`), like every
    // later check: start-up does not wait for Dhan, and a restart never mints while it is alive.
    let keeper = Arc::new(Keeper::new(cfg, dhan, clock, outbox.clone(), token));
    if let (Some(client), Some(rx)) = (telegram, rx) {
        tasks.push(tokio::spawn(outbox::run_sender(client.clone(), rx, outbox.clone(), shutdown.clone())));
        tasks.push(tokio::spawn(telegram_loop(client, Arc::clone(&keeper), shutdown.clone())));
    } else {
        tracing::info!("Telegram is not configured (telegram_bot_token + telegram_chat_id); alerts go to the log only");
    }
    let http = match keeper.cfg.http_listen {
        Some(addr) => {
            let (local, task) = crate::serve::bind(addr, Arc::clone(&keeper), shutdown.clone())
                .await
                .map_err(|source| AppError::Listen { addr, source })?;
            tracing::info!(%local, "serving /healthz, /metrics and /token");
            tasks.push(task);
            Some(local)
        }
        None => None,
    };
    calendar_notice(&keeper);
    tasks.push(tokio::spawn(check_clock(Arc::clone(&keeper))));
    tasks.push(tokio::spawn(lifecycle::run(Arc::clone(&keeper), shutdown)));
    Ok(Running { keeper, http, tasks, _lock: lock })
}

/// Whether a saved token may be ours: a file written for another client id is not kept. (Whether
/// Dhan still accepts it is the loop's first check.)
fn belongs_to(t: &Token, cfg: &Config) -> bool {
    let ours = t.client_id.as_deref().is_none_or(|c| c == cfg.client_id);
    if !ours {
        tracing::warn!("the saved token belongs to another client id than the config's; it will be replaced");
    }
    ours
}

/// When the calendar the rotations rely on ends within 30 days: a log warning at every start,
/// and a Telegram message once per end date.
fn calendar_notice(keeper: &Keeper) {
    let Some(crate::config::MarketChoice::Segments(segs)) = keeper.cfg.market_hours else { return };
    let today = crate::ist::to_ist(&keeper.clock.now()).date_naive();
    let Some((end, notice)) = crate::calendar::end_notice(&keeper.cfg.calendar, segs, today) else { return };
    tracing::warn!("{notice}");
    if let Some(chat) = keeper.alert_chat()
        && keeper.state.get().calendar_notice_for != Some(end)
    {
        keeper.outbox.message(chat, format!("📅 {}", crate::telegram::html::escape(&notice)), vec![]);
        keeper.state.update(|s| s.calendar_notice_for = Some(end));
    }
}

/// Compares this machine's clock with Dhan's `Date` header once at start; warns (log and
/// Telegram) when they disagree enough to break TOTP.
async fn check_clock(keeper: Arc<Keeper>) {
    let sent_at = keeper.clock.now();
    let Ok(probe) = keeper.dhan.probe_auth().await else { return };
    let Some(offset) = probe.clock_offset_secs(sent_at) else { return };
    if offset.abs() <= crate::dhan::Probe::CLOCK_FAIL_SECS {
        tracing::debug!(offset_secs = offset, "clock agrees with Dhan's");
        return;
    }
    let side = if offset > 0.0 { "behind" } else { "ahead of" };
    tracing::warn!(
        offset_secs = offset,
        "this machine's clock is {:.0} s {side} Dhan's; TOTP codes will be refused. Enable NTP (timedatectl set-ntp true)",
        offset.abs()
    );
    if let Some(chat) = keeper.alert_chat() {
        keeper.outbox.message(
            chat,
            format!(
                "⏰ <b>This machine's clock is {:.0} s {side} Dhan's.</b> TOTP codes depend on the time, so minting will fail. Enable NTP (<code>timedatectl set-ntp true</code>), then check with <code>dhan-keeper check</code>.",
                offset.abs()
            ),
            vec![],
        );
    }
}

async fn telegram_loop(client: BotClient, keeper: Arc<Keeper>, shutdown: CancellationToken) {
    let Some(me) = poller::wait_for_me(&client, &shutdown).await else { return };
    let username = me.username.unwrap_or_default();
    tracing::info!(bot = %username, "Telegram bot connected");
    poller::register_commands(&client, COMMANDS).await;
    let bot = Arc::new(Bot::new(Arc::clone(&keeper), username));
    let handler = Arc::new(move |update| {
        let bot = Arc::clone(&bot);
        async move { bot.handle(update).await }
    });
    let offset = keeper.state.get().telegram_offset;
    let state = Arc::clone(&keeper);
    poller::poll(&client, offset, move |o| state.state.update(|s| s.telegram_offset = o), handler, &shutdown).await;
}

/// SIGTERM and SIGINT (Ctrl-C) listeners. Install them first thing, so a signal that arrives
/// while the daemon is still starting is caught (and exits 0) instead of killing the process.
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self { term: signal(SignalKind::terminate()).ok(), int: signal(SignalKind::interrupt()).ok() }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Waits for either signal.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        {
            if let (Some(term), Some(int)) = (&mut self.term, &mut self.int) {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                return;
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
