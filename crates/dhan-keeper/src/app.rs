//! `dhan-keeper run`: take the lock, load and check the saved token, start Telegram, the HTTP
//! endpoint and the lifecycle loop, and stop them all on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::clock::SharedClock;
use crate::commands::{Bot, COMMANDS};
use crate::config::{Accounts, Config};
use crate::dhan::DhanError;
use crate::lifecycle::{self, Keeper, Keepers};
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
    /// One account of several could not start.
    #[error("account {label}: {source}")]
    Account {
        /// The account's label.
        label: String,
        /// Why.
        source: Box<AppError>,
    },
    /// The config lists no account (the config loader refuses that first).
    #[error("the config lists no account")]
    NoAccounts,
    /// The fleet (`redis_url`) could not be joined.
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
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
    /// The first account's keeper (the only one in a classic config).
    pub keeper: Arc<Keeper>,
    /// Every account's keeper.
    pub keepers: Keepers,
    /// Where the HTTP endpoint listens, if configured.
    pub http: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The fleet's tasks; the lease campaign and the announcer stop on `fleet_stop`, which
    /// `join` cancels only once every keeper is idle.
    fleet_tasks: Vec<tokio::task::JoinHandle<()>>,
    fleet_stop: CancellationToken,
    _locks: Vec<InstanceLock>,
}

/// How long shutdown waits for the work in flight (a hook, a handler) before it gives up on it.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

impl Running {
    /// Waits for every task to stop (after `shutdown` was cancelled): the loops, then, for at
    /// most [`SHUTDOWN_GRACE`] in all, the tasks they spawned (hooks, update handlers).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for k in self.keepers.all() {
            let spawned = k.tasks();
            spawned.close();
            if tokio::time::timeout_at(deadline, spawned.wait()).await.is_err() {
                tracing::warn!(
                    left = spawned.len(),
                    "stopping with work still running (an on_refresh hook or a command); it is abandoned"
                );
            }
        }
        if self.fleet_tasks.is_empty() {
            return;
        }
        // The fleet lease goes last: not while a request to Dhan may still bring a token.
        for k in self.keepers.all() {
            let longest = k.config().dhan_timeout + std::time::Duration::from_secs(1);
            if tokio::time::timeout(longest, k.idle()).await.is_err() {
                tracing::warn!("a request to Dhan is still out at shutdown; releasing the fleet lease anyway");
            }
        }
        self.fleet_stop.cancel();
        for t in self.fleet_tasks {
            let _ = t.await;
        }
    }
}

/// Starts everything for one account (a classic config); returns once it is running. Cancel
/// `shutdown` to stop it.
pub async fn start(cfg: Config, clock: SharedClock, shutdown: CancellationToken) -> Result<Running, AppError> {
    start_accounts(Accounts::one(cfg), clock, shutdown).await
}

/// Starts a keeper for every account, and the bot and HTTP endpoint they share.
pub async fn start_accounts(
    accounts: Accounts,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> Result<Running, AppError> {
    let shared = accounts.list.first().map(|a| a.config.clone()).ok_or(AppError::NoAccounts)?;
    let telegram = match (&shared.telegram_bot_token, shared.telegram_chat_id) {
        (Some(bot_token), Some(_)) => Some(BotClient::new(&shared.telegram_api_url, bot_token)?),
        _ => None,
    };
    let (outbox, rx) = match &telegram {
        Some(_) => {
            let (o, rx) = Outbox::new();
            (o, Some(rx))
        }
        None => (Outbox::disabled(), None),
    };
    let (keepers, locks) = keepers(accounts, &clock, &outbox)?;
    let mut tasks = Vec::new();
    // In a fleet (`redis_url`), each account campaigns for its own client id's lease.
    let fleet_stop = CancellationToken::new();
    let mut fleet_tasks = Vec::new();
    for keeper in keepers.all() {
        let joined = lifecycle::start_fleet(keeper, &shutdown, &fleet_stop).map_err(|e| match keeper.label() {
            Some(l) => AppError::Account { label: l.to_string(), source: Box::new(e.into()) },
            None => e.into(),
        });
        match joined {
            Ok(joined) => fleet_tasks.extend(joined),
            Err(e) => {
                fleet_stop.cancel();
                return Err(e);
            }
        }
    }
    if let (Some(client), Some(rx)) = (telegram, rx) {
        tasks.push(tokio::spawn(outbox::run_sender(client.clone(), rx, outbox.clone(), shutdown.clone())));
        tasks.push(tokio::spawn(telegram_loop(client, keepers.clone(), outbox, shutdown.clone())));
    } else {
        tracing::info!("Telegram is not configured (telegram_bot_token + telegram_chat_id); alerts go to the log only");
    }
    let http = match shared.http_listen {
        Some(addr) => {
            let (local, task) = crate::serve::bind(addr, keepers.clone(), shutdown.clone())
                .await
                .map_err(|source| AppError::Listen { addr, source })?;
            tracing::info!(%local, "serving /healthz, /metrics and /token");
            tasks.push(task);
            Some(local)
        }
        None => None,
    };
    let first = Arc::clone(keepers.first());
    // The calendar and the machine's clock are shared: noticed once.
    first.calendar_notice();
    tasks.push(tokio::spawn(clock_check(Arc::clone(&first), shutdown.clone())));
    for keeper in keepers.all() {
        // With several accounts every log line of an account's loop and watcher names it.
        let span = keeper.span();
        span.in_scope(|| keeper.credential_stop_notice());
        let watch = crate::watch::run(Arc::clone(keeper), shutdown.clone()).instrument(span.clone());
        tasks.push(tokio::spawn(watch));
        tasks.push(tokio::spawn(lifecycle::run(Arc::clone(keeper), shutdown.clone()).instrument(span)));
    }
    Ok(Running { keeper: first, keepers, http, tasks, fleet_tasks, fleet_stop, _locks: locks })
}

/// One keeper per account, each with its own lock, Dhan client (and source address) and saved
/// token. A problem names the account when there are several.
fn keepers(accounts: Accounts, clock: &SharedClock, outbox: &Outbox) -> Result<(Keepers, Vec<InstanceLock>), AppError> {
    let listed = accounts.listed;
    let mut locks = Vec::new();
    let mut list = Vec::new();
    for a in accounts.list {
        let label = a.label.clone();
        let named =
            |e: AppError| if listed { AppError::Account { label: label.to_string(), source: Box::new(e) } } else { e };
        let lock = InstanceLock::acquire(&a.config.lock_file(), "run").map_err(|e| named(e.into()))?;
        let dhan = crate::cli::dhan_client(&a.config).map_err(|e| named(e.into()))?;
        // The saved token is checked with Dhan by the loop's first pass (`Keeper::verify`), like
        // every later check: start-up does not wait for Dhan, and a restart never mints while
        // it is alive.
        let token = saved_token(&a.config, clock.now()).map_err(named)?;
        let mut keeper = Keeper::new(a.config, dhan, Arc::clone(clock), outbox.clone(), token);
        if listed {
            keeper = keeper.for_account(a.label, a.alert_chat_id);
        }
        locks.push(lock);
        list.push(Arc::new(keeper));
    }
    let mut list = list.into_iter();
    let first = list.next().ok_or(AppError::NoAccounts)?;
    Ok((Keepers::new(first, list.collect()), locks))
}

/// The token file as the last run (or a crash) left it: a newer token left in a temp file is
/// promoted, stale temps removed, a corrupt file set aside, another client's token dropped, and
/// wrong ownership or permissions fixed by rewriting it.
fn saved_token(cfg: &Config, now: chrono::DateTime<chrono::Utc>) -> Result<Option<Token>, AppError> {
    let store = TokenStore::for_config(cfg);
    let (promoted, stale) = crate::token::recover_temps(&store, now);
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
            let aside = store.set_aside(now)?;
            tracing::warn!(error = %e, aside = %aside.display(), "the token file was corrupt; kept it aside and will get a new token");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let token = token.filter(|t| belongs_to(t, cfg));
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
    Ok(token)
}

/// The clock check at start, abandoned on shutdown (Dhan may be slow to answer).
async fn clock_check(keeper: Arc<Keeper>, shutdown: CancellationToken) {
    tokio::select! {
        () = keeper.check_clock() => {}
        () = shutdown.cancelled() => {}
    }
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

async fn telegram_loop(client: BotClient, keepers: Keepers, outbox: Outbox, shutdown: CancellationToken) {
    let Some(me) = poller::wait_for_me(&client, &shutdown).await else { return };
    let username = me.username.unwrap_or_default();
    tracing::info!(bot = %username, "Telegram bot connected");
    poller::register_commands(&client, COMMANDS).await;
    let keeper = Arc::clone(keepers.first());
    let bot = Arc::new(Bot::new(keepers, outbox, username));
    let handler = Arc::new(move |update| {
        let bot = Arc::clone(&bot);
        async move { bot.handle(update).await }
    });
    let tasks = keeper.tasks().clone();
    // In a fleet only the leader polls. Telegram forgets the updates a poll confirmed, so a new
    // leader with an older saved offset gets only what the last one had not confirmed.
    lifecycle::while_keeping_the_bot(&keeper, &shutdown, || {
        let state = Arc::clone(&keeper);
        poller::poll(
            &client,
            keeper.telegram_offset(),
            move |o| state.save_telegram_offset(o),
            handler.clone(),
            &tasks,
            &shutdown,
        )
    })
    .await;
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
