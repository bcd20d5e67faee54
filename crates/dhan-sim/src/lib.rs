//! A faithful, stateful simulator of Dhan's auth and api hosts on 127.0.0.1.
//!
//! dhan-keeper's tests, benchmarks and `demo` run against this instead of Dhan: no machine here
//! reaches Dhan, and the behaviours that matter most are the ugly ones (HTTP 200 rejections, one
//! mint per 2 minutes, one live token per client, `availabelBalance`, empty holdings as HTTP 500
//! DH-1111, IST times without an offset). See the crate README for every route and knob.
//!
//! # Layout
//! - [`config`]: the simulated account and the switches for Dhan's unverified behaviours.
//! - [`state`]: tokens, consents, cooldown, rate limit: Dhan's rules without HTTP.
//! - [`routes`]: the Dhan routes; [`admin`]: the `/__sim/` control API.
//! - [`faults`]: "the next N calls to this route fail like this".
//! - [`telegram`]: a fake Telegram Bot API (long polling, sendMessage validation, 409s, faults).
//! - [`server`]: the accept loop that can drop connections and stop/restart on the same port.
#![warn(missing_docs)]

pub mod admin;
pub mod clock;
pub mod config;
pub mod faults;
pub mod jwt;
pub mod routes;
pub mod server;
pub mod state;
pub mod telegram;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

pub use config::{Account, MintCheck, RenewApp, SimConfig, StaticIp, Superseded};
pub use faults::{Fault, TokenRejection};
pub use telegram::{CallbackAnswer, TelegramSim, TgError};

/// State shared by every connection.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<state::SimState>,
    /// Pending faults.
    pub faults: faults::Faults,
    /// The simulator's clock.
    pub clock: clock::SimClock,
}

impl Shared {
    /// Locks the state. A poisoned lock (a panicking test thread) is recovered, not propagated.
    pub fn lock(&self) -> MutexGuard<'_, state::SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct DhanSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    cancel: Mutex<CancellationToken>,
}

impl DhanSim {
    /// Starts on `127.0.0.1:0` (a free port).
    pub async fn start(config: SimConfig) -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Starts on `addr`.
    pub async fn start_on(addr: SocketAddr, config: SimConfig) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(state::SimState::new(config)),
            faults: faults::Faults::default(),
            clock: clock::SimClock::default(),
        });
        let listener = server::bind(addr)?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        tokio::spawn(server::serve(listener, Self::app(&shared), shared.clone(), cancel.clone()));
        Ok(Self { shared, addr, cancel: Mutex::new(cancel) })
    }

    fn app(shared: &Arc<Shared>) -> axum::Router {
        routes::router(shared.clone()).merge(admin::router(shared.clone()))
    }

    /// `http://127.0.0.1:PORT`: use it as both `dhan_auth_url` and `dhan_api_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening and cuts every connection (clients see "connection refused").
    pub fn stop(&self) {
        self.cancel.lock().unwrap_or_else(|e| e.into_inner()).cancel();
    }

    /// Listens again on the same port, with state intact (tokens issued before still work).
    pub async fn restart(&self) -> std::io::Result<()> {
        self.stop();
        let listener = server::bind(self.addr)?;
        let cancel = CancellationToken::new();
        tokio::spawn(server::serve(listener, Self::app(&self.shared), self.shared.clone(), cancel.clone()));
        *self.cancel.lock().unwrap_or_else(|e| e.into_inner()) = cancel;
        Ok(())
    }

    /// Fails the next `count` calls to `route` (`profile`, `generateAccessToken`, ..., or `*`).
    pub fn inject(&self, route: &str, fault: Fault, count: usize) {
        self.shared.faults.inject(route, fault, count);
    }

    /// Forgets pending faults.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Requests received on `route`, faulted or not.
    pub fn calls(&self, route: &str) -> u64 {
        self.shared.lock().calls.get(route).copied().unwrap_or(0)
    }

    /// Every access token the simulator ever issued, for "did a token leak" checks.
    pub fn all_tokens(&self) -> Vec<String> {
        self.shared.lock().all_tokens()
    }

    /// The last requests (up to 10 000): route, arrival time, the simulator's own handling time.
    pub fn call_log(&self) -> Vec<state::CallRecord> {
        self.shared.lock().call_log.iter().cloned().collect()
    }

    /// Requests received on all Dhan routes.
    pub fn total_calls(&self) -> u64 {
        self.shared.lock().calls.values().sum()
    }

    /// Successful `generateAccessToken` calls.
    pub fn mints(&self) -> u64 {
        self.shared.lock().mint_count
    }

    /// Tokens issued to callers by any route.
    pub fn issued(&self) -> u64 {
        self.shared.lock().issued_count
    }

    /// The token that works right now, if any.
    pub fn active_token(&self) -> Option<String> {
        let now = self.shared.clock.now();
        self.shared.lock().active_token(now)
    }

    /// Replaces the account data.
    pub fn set_account(&self, account: Account) {
        self.shared.lock().account = account;
    }

    /// Edits the settings (lifetime, cooldown, behaviours) in place.
    pub fn update_config(&self, f: impl FnOnce(&mut SimConfig)) {
        f(&mut self.shared.lock().config);
    }

    /// The current settings.
    pub fn config(&self) -> SimConfig {
        self.shared.lock().config.clone()
    }

    /// Someone minted a token elsewhere: the current token stops working.
    pub fn mint_elsewhere(&self) {
        let now = self.shared.clock.now();
        self.shared.lock().mint_elsewhere(now);
    }

    /// The active token expires now.
    pub fn expire_active(&self) {
        let now = self.shared.clock.now();
        self.shared.lock().expire_active(now);
    }

    /// Lets the next mint through regardless of the cooldown.
    pub fn reset_cooldown(&self) {
        self.shared.lock().reset_cooldown();
    }

    /// Runs the simulator's clock `offset` ahead of the real one.
    pub fn set_clock_offset(&self, offset: chrono::Duration) {
        self.shared.clock.set_offset(offset);
    }

    /// The TOTP code the simulator currently expects, and its seconds left.
    pub fn totp_now(&self) -> Option<(String, u64)> {
        let now = self.shared.clock.now();
        self.shared.lock().totp_now(now)
    }

    /// The human login step: approves `consent_id` and returns the callback URL with `tokenId`.
    pub fn login(&self, consent_id: &str) -> Option<String> {
        self.shared.lock().login(consent_id)
    }
}

impl Drop for DhanSim {
    fn drop(&mut self) {
        self.stop();
    }
}
