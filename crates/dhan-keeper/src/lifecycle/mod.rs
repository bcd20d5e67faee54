//! The token lifecycle: the [`Keeper`] that owns the current token and every way to replace it,
//! and the loop that asks what is next and sleeps until then.
//!
//! Every change of token goes through `Keeper::accept` under one async lock, whether it came
//! from the schedule, `/refresh`, a pasted token or a consent login: save atomically, reset the
//! alert ladder, confirm on Telegram, run the hook, wake the loop. The loop never sleeps longer
//! than [`MAX_NAP`] and recomputes its plan from the [`Clock`](crate::clock::Clock) on waking,
//! so a suspended laptop or a clock jump changes the plan instead of oversleeping an expiry.
//!
//! - [`rotate`](Keeper::rotate) (`rotate.rs`): RenewToken for tokens Dhan renews (Dhan Web,
//!   `SELF`), else a TOTP + PIN mint behind the [`gate`](crate::gate).
//! - [`verify`](Keeper::verify) (`verify.rs`): the `/v2/profile` check; one rejection is a
//!   suspicion confirmed by bounded re-probes before anything is replaced; the static-IP check.
//! - `run.rs`: one pass of the loop ([`Keeper::step`]) and the loop itself ([`run`]).

mod fleet;
mod fleet_tasks;
mod fleet_view;
mod keepers;
mod label;
mod rotate;
mod run;
mod startup;
mod status;
mod verify;
mod view;

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

pub use fleet_tasks::{start_fleet, while_keeping_the_bot};
pub use fleet_view::FleetView;
pub use keepers::{Keepers, Pick, labels, views};
use label::AccountTag;
pub(crate) use rotate::{gate_error, mint_refused};
pub use run::run;
pub use status::{Live, RotateError, Suspicion};
pub use view::{TokenSummary, View};

use crate::alerts;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::dhan::{DhanClient, DhanError, Minted};
use crate::ist;
use crate::metrics::Metrics;
use crate::policy::PolicyConfig;
use crate::state::{Attempt, StateFile};
use crate::telegram::Outbox;
use crate::token::{StoreError, Token, TokenSource, TokenStore};

pub use crate::planner::MAX_NAP;

/// Re-probes after a first rejection before a token is called dead: rejections seen live soon
/// after a mint were sometimes transient (reference §8b.4), and a mint on a false alarm kills the
/// token every trading program holds.
pub const REPROBES: u32 = 2;

/// Owns the token and everything that may replace it. Its fields are private: the rest of the
/// program talks to it through intents (`rotate`, `set_paused`, `install_pasted`,
/// `consume_token_id`, `account`, `login_url`, …) and reads it through one consistent
/// [`view`](Keeper::view).
#[derive(Debug)]
pub struct Keeper {
    cfg: Config,
    /// [`Config::credentials_id`], computed once: the config never changes while it runs.
    config_id: String,
    policy: PolicyConfig,
    dhan: DhanClient,
    store: TokenStore,
    clock: SharedClock,
    state: StateFile,
    outbox: Outbox,
    metrics: Metrics,
    events: crate::events::Events,
    tasks: tokio_util::task::TaskTracker,
    token: Mutex<Option<Token>>,
    live: Mutex<Live>,
    work: tokio::sync::Mutex<()>,
    wake: Notify,
    /// Which account this is when the config lists several (`None`: the classic single
    /// account, whose messages carry no label).
    account: Option<AccountTag>,
    /// The fleet's side (`fleet.rs`): the coordinator, the token waiting to be published.
    fleet: fleet::FleetSide,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::zero())
}

impl Keeper {
    /// A keeper holding `token` (as loaded; the loop checks it with Dhan first).
    pub fn new(cfg: Config, dhan: DhanClient, clock: SharedClock, outbox: Outbox, token: Option<Token>) -> Self {
        let store = TokenStore::for_config(&cfg);
        let state = StateFile::load(StateFile::path_for(&cfg.token_file));
        Self {
            policy: PolicyConfig::from_config(&cfg),
            config_id: cfg.credentials_id(),
            cfg,
            dhan,
            store,
            clock,
            state,
            outbox,
            metrics: Metrics::default(),
            events: crate::events::Events::default(),
            tasks: tokio_util::task::TaskTracker::new(),
            token: Mutex::new(token),
            live: Mutex::new(Live::default()),
            work: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            account: None,
            fleet: fleet::FleetSide::default(),
        }
    }

    /// The configuration it runs with (read-only).
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Now, by the keeper's clock (the one every decision uses).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The token file's path.
    pub fn token_path(&self) -> &std::path::Path {
        self.store.path()
    }

    /// The `/events` hub every accepted token is announced on.
    pub fn events(&self) -> &crate::events::Events {
        &self.events
    }

    /// Waits until no request that could bring a token is in flight (`work` is free). At
    /// shutdown, before the fleet lease is released.
    pub async fn idle(&self) {
        drop(self.work.lock().await);
    }

    /// The tasks the keeper spawned (the hook); `app` waits for them, with a bound, at shutdown.
    pub fn tasks(&self) -> &tokio_util::task::TaskTracker {
        &self.tasks
    }

    /// This account's metric families for `/metrics`.
    pub fn metric_families(&self) -> Vec<crate::metrics::Family> {
        let expires = self.usable_token().map(|t| t.expires_at.timestamp());
        let mut families = self.metrics.families(expires, self.clock.now().timestamp());
        families.extend(self.fleet_metrics());
        families
    }

    /// How many Telegram sends failed (the outbox is shared by every account).
    pub fn telegram_send_failures(&self) -> u64 {
        self.outbox.failures.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The next Telegram update id to ask for (persisted).
    pub fn telegram_offset(&self) -> i64 {
        self.state.get().telegram_offset
    }

    /// Persists the next Telegram update id, before the updates are handled.
    pub fn save_telegram_offset(&self, offset: i64) {
        self.state.update(|s| s.telegram_offset = offset);
    }

    /// The TOTP code current now, when a TOTP secret is configured (the consent flow's button).
    pub fn totp_now(&self) -> Option<crate::totp::Code> {
        self.cfg.totp_secret.as_ref().map(|t| t.code_at(self.clock.now()))
    }

    /// The credential stop that applies to this config, if any.
    pub fn credential_stop(&self) -> Option<crate::state::CredentialStop> {
        crate::gate::credential_stop(&self.state.get(), &self.config_id).cloned()
    }

    /// The current token, if any.
    pub fn token(&self) -> Option<Token> {
        lock(&self.token).clone()
    }

    /// The runtime status.
    pub fn live(&self) -> Live {
        lock(&self.live).clone()
    }

    fn set_live(&self, change: impl FnOnce(&mut Live)) {
        change(&mut lock(&self.live));
    }

    /// The token if it is usable now: present, unexpired, not revoked.
    pub fn usable_token(&self) -> Option<Token> {
        let now = self.clock.now();
        self.token().filter(|t| !t.is_expired(now) && !self.live().revoked)
    }

    /// Makes the loop recompute its plan now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Pauses or resumes automatic rotation and alerts (persisted).
    pub fn set_paused(&self, paused: bool) {
        self.state.update(|s| s.paused = paused);
        self.wake();
    }

    /// The chat that receives alerts, if Telegram is configured.
    pub fn alert_chat(&self) -> Option<i64> {
        self.cfg.telegram_chat_id.filter(|_| self.outbox.is_enabled() && self.keeps_the_bot())
    }

    /// When the next mint is allowed, if not now (Dhan's window from the last attempt).
    pub fn cooldown_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        crate::gate::window_until(&self.state.get(), now, self.cfg.mint_cooldown)
    }

    /// Takes in a token Dhan has just issued to this node. Callers hold `work`.
    fn accept(&self, minted: Minted, source: TokenSource, why: &str) -> Result<Token, RotateError> {
        let token = Token::accept(minted, &self.cfg.client_id, source, self.clock.now())?;
        Ok(self.take_in(token, source, why, fleet::Origin::Obtained))
    }

    /// The one place a new token is taken in, obtained here or shared by the fleet. Callers hold
    /// `work`.
    fn take_in(&self, token: Token, source: TokenSource, why: &str, origin: fleet::Origin) -> Token {
        let now = self.clock.now();
        let obtained = origin == fleet::Origin::Obtained;
        let replaced_web_token = self.token().filter(|old| !old.is_expired(now)).is_some_and(|old| is_web_token(&old))
            && !is_web_token(&token);
        // Dhan has issued it, so the previous token is already dead: whatever the disk says, this
        // one is kept (in memory, served over HTTP and handed to the hook) and saved as soon as
        // the disk allows.
        let saved = self.store.save(&token);
        *lock(&self.token) = Some(token.clone());
        self.record_health(&token, true);
        self.events.publish(&token, &self.cfg.client_id);
        self.state.update(|s| {
            s.alerted = None;
            // A token from the fleet says nothing about this node's own credentials.
            if obtained {
                s.credentials_refused = None;
            }
            s.last_attempt =
                Some(Attempt { at: ist::to_ist(&now), ok: true, what: format!("new token via {source} ({why})") });
        });
        self.set_live(|l| {
            *l = Live {
                renew_refused_for: l.renew_refused_for,
                unsaved: saved.is_err(),
                dhan_reachable: Some(true),
                last_verify: Some(now),
                ip: l.ip.clone(),
                ..Live::default()
            };
        });
        self.metrics.rotation(source.as_str(), now.timestamp());
        match &saved {
            Ok(()) if !obtained => {
                tracing::info!(%source, expires_at = %token.expires_at, "the fleet's token saved to {}", self.store.path().display());
            }
            Ok(()) => {
                tracing::info!(%source, expires_at = %token.expires_at, "new token saved to {}", self.store.path().display());
                let mut text = alerts::rotated(&token, now);
                if replaced_web_token {
                    text.push_str(&alerts::replaced_web_token());
                }
                self.alert(text, vec![]);
            }
            Err(e) => self.save_failed(e, Some(&token)),
        }
        self.run_hook(token.clone(), saved.is_ok());
        if obtained {
            self.fleet_obtained(&token);
        }
        self.wake();
        token
    }

    fn save_failed(&self, e: &StoreError, new: Option<&Token>) {
        tracing::error!(error = %e, "the token could not be written; keeping it in memory and retrying");
        self.metrics.failure("store");
        let first = !self.live().unsaved;
        self.set_live(|l| l.unsaved = true);
        if first || new.is_some() {
            self.host_alert(alerts::unsaved(&e.to_string(), new));
        }
    }

    /// Makes the token file hold the current token again if it was deleted, replaced, corrupted,
    /// or could not be written: the daemon owns that file.
    fn heal_file(&self) {
        let Some(token) = self.token() else { return };
        let on_disk = self.store.load();
        let intact = matches!(&on_disk, Ok(Some(f)) if f.access_token.expose() == token.access_token.expose());
        let unsaved = self.live().unsaved;
        if intact {
            if unsaved {
                self.set_live(|l| l.unsaved = false);
            }
            return;
        }
        if !unsaved {
            let what = match &on_disk {
                Ok(None) => "missing".to_string(),
                Ok(Some(_)) => "holding another token".to_string(),
                Err(e) => e.to_string(),
            };
            tracing::warn!(file = %self.store.path().display(), %what, "the token file changed under the daemon; writing the current token back");
        }
        match self.store.save(&token) {
            Ok(()) => {
                self.set_live(|l| l.unsaved = false);
                if unsaved {
                    tracing::info!("the token file is written again");
                    self.host_alert(alerts::saved_again(self.store.path()));
                }
            }
            Err(e) => {
                if !unsaved {
                    self.save_failed(&e, None);
                }
            }
        }
    }

    fn run_hook(&self, token: Token, saved: bool) {
        let Some(argv) = self.cfg.on_refresh.clone() else { return };
        let timeout = self.cfg.hook_timeout;
        let whose = crate::hook::Whose {
            client_id: self.cfg.client_id.clone(),
            account: self.label().map(|l| l.to_string()),
            token_file: self.store.path().to_path_buf(),
        };
        let voice = self.host_voice();
        let failures = std::sync::Arc::clone(&self.metrics.hook_failures);
        let secrets = crate::hook::secrets_of(&self.cfg);
        let span = self.span();
        self.tasks.spawn(tracing::Instrument::instrument(
            async move {
                match crate::hook::run(&argv, &token, &whose, timeout, &secrets).await {
                    Ok(()) => tracing::info!("on_refresh command finished"),
                    Err(e) => {
                        tracing::error!(error = %e, "on_refresh command failed");
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        voice.say(&alerts::hook_failed(&e.to_string(), saved));
                    }
                }
            },
            span,
        ));
    }

    /// Records a failed attempt; alerts after `alert_after_failures` in a row (or at once when
    /// retrying cannot help).
    fn record_failure(&self, e: &RotateError) {
        let now = self.clock.now();
        self.metrics.failure(e.reason());
        let text = e.to_string();
        tracing::warn!(error = %text, "could not get a new token");
        self.state.update(|s| s.last_attempt = Some(Attempt { at: ist::to_ist(&now), ok: false, what: text.clone() }));
        let credentials = matches!(e, RotateError::Dhan(DhanError::BadCredentials { .. }));
        let hopeless = matches!(e, RotateError::Dhan(d) if !d.is_transient())
            || matches!(
                e,
                RotateError::Refused(_) | RotateError::NotConfigured(_) | RotateError::CredentialsStopped { .. }
            );
        let mut alert = false;
        self.set_live(|l| {
            l.failures += 1;
            l.last_failure_at = Some(now);
            l.last_error = Some(text.clone());
            if (hopeless || l.failures >= self.cfg.alert_after_failures) && !l.failure_alerted {
                l.failure_alerted = true;
                alert = true;
            }
        });
        if !alert {
            return;
        }
        let buttons = vec![alerts::refresh_button(self.cfg.mode())];
        let left = self.usable_token().map(|t| t.remaining(now));
        if credentials {
            self.alert(alerts::credentials_stopped(&text, left), buttons);
        } else {
            let live = self.live();
            let next = crate::planner::next_retry(live.failures, live.last_failure_at, now, &self.policy);
            self.alert(alerts::failing(live.failures, &text, next, left), buttons);
        }
    }
}

impl Keeper {
    /// Persists Dhan's verdict on `token` for `status` and `token`, which run as separate
    /// processes: a token Dhan rejects is never shown valid.
    fn record_health(&self, token: &Token, accepted: bool) {
        let checked_at = ist::to_ist(&self.clock.now());
        let health = crate::state::TokenHealth { expires_at: token.expires_at, accepted, checked_at };
        self.state.update(|s| s.token_health = Some(health));
    }
}

/// Whether `token` is a Dhan Web (`SELF`) token by its claims.
fn is_web_token(token: &Token) -> bool {
    crate::dhan::jwt::decode(token.access_token.expose())
        .and_then(|c| c.token_consumer_type)
        .is_some_and(|t| t.eq_ignore_ascii_case("SELF"))
}
