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

pub use config::{Account, MintCheck, RenewApp, SimClient, SimConfig, StaticIp, Superseded};
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

    /// Successful `generateAccessToken` calls, every client together.
    pub fn mints(&self) -> u64 {
        self.shared.lock().total_mints()
    }

    /// Tokens issued to callers by any route, every client together.
    pub fn issued(&self) -> u64 {
        self.shared.lock().total_issued()
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

    /// Lets the next mint of every client through regardless of the cooldown.
    pub fn reset_cooldown(&self) {
        self.shared.lock().reset_all_cooldowns();
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

    /// The human login step: approves `consent_id` (of any client) and returns the callback URL
    /// with `tokenId`.
    pub fn login(&self, consent_id: &str) -> Option<String> {
        self.shared.lock().by_consent(consent_id).login(consent_id)
    }

    /// The client ids this simulator serves: [`SimConfig::client_id`], then
    /// [`SimConfig::extra_clients`].
    pub fn client_ids(&self) -> Vec<String> {
        self.shared.lock().clients().map(|c| c.config.client_id.clone()).collect()
    }

    /// Successful `generateAccessToken` calls of one client (0 for an unknown one).
    pub fn mints_for(&self, client_id: &str) -> u64 {
        self.shared.lock().client(client_id).map_or(0, |c| c.mint_count)
    }

    /// The token that works right now for one client, if any.
    pub fn active_token_for(&self, client_id: &str) -> Option<String> {
        let now = self.shared.clock.now();
        self.shared.lock().client(client_id).and_then(|c| c.active_token(now))
    }

    /// The TOTP code the simulator expects now from one client, and its seconds left.
    pub fn totp_now_for(&self, client_id: &str) -> Option<(String, u64)> {
        let now = self.shared.clock.now();
        self.shared.lock().client(client_id).and_then(|c| c.totp_now(now))
    }

    /// Someone minted a token for this client elsewhere: its current token stops working.
    /// Returns false for a client the simulator does not serve.
    pub fn mint_elsewhere_for(&self, client_id: &str) -> bool {
        let now = self.shared.clock.now();
        self.with_client(client_id, |c| c.mint_elsewhere(now))
    }

    /// This client's active token expires now. False for an unknown client.
    pub fn expire_active_for(&self, client_id: &str) -> bool {
        let now = self.shared.clock.now();
        self.with_client(client_id, |c| c.expire_active(now))
    }

    /// Replaces one client's account data (its static IP included). False for an unknown client.
    pub fn set_account_for(&self, client_id: &str, account: Account) -> bool {
        self.with_client(client_id, |c| c.account = account)
    }

    fn with_client(&self, client_id: &str, f: impl FnOnce(&mut state::SimState)) -> bool {
        let mut st = self.shared.lock();
        let c = st.client_mut(Some(client_id));
        let found = c.config.client_id == client_id;
        if found {
            f(c);
        }
        found
    }
}

impl Drop for DhanSim {
    fn drop(&mut self) {
        self.stop();
    }
}
