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

mod rotate;
mod run;
mod verify;

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use tokio::sync::Notify;

pub use run::run;

use crate::alerts;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::dhan::{DhanClient, DhanError, IpStatus, Minted};
use crate::ist;
use crate::metrics::Metrics;
use crate::policy::PolicyConfig;
use crate::state::{Attempt, StateFile};
use crate::telegram::{Button, Outbox};
use crate::token::{StoreError, Token, TokenSource, TokenStore};

pub use crate::planner::MAX_NAP;

/// Re-probes after a first rejection before a token is called dead: rejections seen live soon
/// after a mint were sometimes transient (reference §8b.4), and a mint on a false alarm kills the
/// token every trading program holds.
pub const REPROBES: u32 = 2;

/// Why no new token came out of an attempt.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// Inside Dhan's mint window (one mint per `cooldown`, counted from the last attempt).
    #[error(
        "Dhan allows one new token every {} counted from the last attempt{}; the next one can be minted at {}{}",
        humantime::format_duration(*.cooldown),
        if *.refused { " (Dhan just refused one, which restarts the window)" } else { "" },
        ist::human_secs(&ist::to_ist(.until)),
        .credentials.as_ref().map(|m| format!(". The last attempt failed: Dhan refused the credentials ({m}); fix them first")).unwrap_or_default()
    )]
    Cooldown {
        /// When minting is allowed again.
        until: DateTime<Utc>,
        /// The configured window.
        cooldown: Duration,
        /// Dhan refused the attempt (rather than the daemon holding it back).
        refused: bool,
        /// Dhan's words when the last attempt was refused for its credentials.
        credentials: Option<String>,
    },
    /// Dhan refused the credentials earlier; automatic minting is stopped until they change.
    #[error(
        "automatic minting is stopped: Dhan refused the credentials at {} ({message}). Fix pin, totp_secret or \
         client_id in the config (the stop lifts when they change), or press Refresh / run `dhan-keeper refresh` to try once more",
        ist::human(at)
    )]
    CredentialsStopped {
        /// When Dhan refused them.
        at: DateTime<FixedOffset>,
        /// Dhan's words.
        message: String,
    },
    /// Consent mode: a human has to log in.
    #[error("consent mode needs you to log in through the link")]
    NeedsLogin,
    /// Dhan rejected the current token once; it is being re-checked before anything is replaced.
    #[error("Dhan rejected the current token once; checking it again before replacing it")]
    Suspect,
    /// Dhan refused or failed.
    #[error("{0}")]
    Dhan(#[from] DhanError),
    /// Dhan issued a token for another account.
    #[error("Dhan issued a token for client {issued_for}, not {expected}; check client_id in the config")]
    WrongClient {
        /// Whose token it is.
        issued_for: String,
        /// The configured client id.
        expected: String,
    },
}

impl RotateError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            RotateError::Cooldown { .. } => "cooldown",
            RotateError::CredentialsStopped { .. } => "credentials_stopped",
            RotateError::NeedsLogin => "needs_login",
            RotateError::Suspect => "suspect",
            RotateError::Dhan(e) => e.reason(),
            RotateError::WrongClient { .. } => "wrong_client",
        }
    }
}

/// A rejection of a token that should be alive, not yet confirmed.
#[derive(Debug, Clone, PartialEq)]
pub struct Suspicion {
    /// Rejections in a row so far.
    pub rejections: u32,
    /// When the first one came.
    pub first_at: DateTime<Utc>,
    /// When the last probe was made.
    pub last_at: DateTime<Utc>,
    /// Dhan's words.
    pub message: String,
}

/// What the daemon knows right now but does not persist.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Failed attempts in a row.
    pub failures: u32,
    /// When the last one failed.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Why, in plain words.
    pub last_error: Option<String>,
    /// Whether the failure alert for this streak went out.
    pub failure_alerted: bool,
    /// RenewToken refused the token that expires at this instant.
    pub renew_refused_for: Option<DateTime<FixedOffset>>,
    /// Dhan rejects the current token although it should be alive (confirmed by re-probes).
    pub revoked: bool,
    /// Dhan rejected the current token, not yet confirmed.
    pub suspect: Option<Suspicion>,
    /// Outcome of the last call to Dhan's api host.
    pub dhan_reachable: Option<bool>,
    /// When the token was last checked with `/v2/profile`.
    pub last_verify: Option<DateTime<Utc>>,
    /// When the loop plans to rotate next.
    pub next_rotation: Option<DateTime<Utc>>,
    /// When the next alert is due.
    pub next_alert: Option<DateTime<Utc>>,
    /// The current token is not on disk (a write failed); retried every pass of the loop.
    pub unsaved: bool,
    /// What `GET /v2/ip/getIP` said last (or why it could not be asked).
    pub ip: Option<Result<IpStatus, String>>,
    /// When it was asked.
    pub ip_checked_at: Option<DateTime<Utc>>,
    /// The token (by expiry) for which "the next attempt comes after expiry" was already said.
    pub gap_alerted_for: Option<DateTime<FixedOffset>>,
}

/// Owns the token and everything that may replace it.
#[derive(Debug)]
pub struct Keeper {
    /// The configuration.
    pub cfg: Config,
    /// The policy settings derived from it.
    pub policy: PolicyConfig,
    /// Dhan.
    pub dhan: DhanClient,
    /// The token file.
    pub store: TokenStore,
    /// The wall clock.
    pub clock: SharedClock,
    /// Persisted daemon state.
    pub state: StateFile,
    /// Telegram's outgoing queue.
    pub outbox: Outbox,
    /// Counters.
    pub metrics: Metrics,
    /// `GET /events`: every accepted token is announced there.
    pub events: crate::events::Events,
    token: Mutex<Option<Token>>,
    live: Mutex<Live>,
    work: tokio::sync::Mutex<()>,
    wake: Notify,
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
            cfg,
            dhan,
            store,
            clock,
            state,
            outbox,
            metrics: Metrics::default(),
            events: crate::events::Events::default(),
            token: Mutex::new(token),
            live: Mutex::new(Live::default()),
            work: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
        }
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
        self.cfg.telegram_chat_id.filter(|_| self.outbox.is_enabled())
    }

    fn alert(&self, html: String, buttons: Vec<Button>) {
        if let Some(chat) = self.alert_chat() {
            self.outbox.message(chat, html, buttons);
        }
    }

    /// When the next mint is allowed, if not now (Dhan's window from the last attempt).
    pub fn cooldown_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        crate::gate::window_until(&self.state.get(), now, self.cfg.mint_cooldown)
    }

    /// The one place a new token is taken in. Callers hold `work`.
    fn accept(&self, minted: Minted, source: TokenSource, why: &str) -> Result<Token, RotateError> {
        let now = self.clock.now();
        if let Some(other) = minted.client_id.as_deref().filter(|c| *c != self.cfg.client_id) {
            return Err(RotateError::WrongClient {
                issued_for: other.to_string(),
                expected: self.cfg.client_id.clone(),
            });
        }
        let token = Token::from_minted(minted, source, now);
        if token.is_expired(now) {
            return Err(RotateError::Dhan(DhanError::AuthFailed { message: "the token has already expired".into() }));
        }
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
            s.credentials_refused = None;
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
        self.wake();
        Ok(token)
    }

    fn save_failed(&self, e: &StoreError, new: Option<&Token>) {
        tracing::error!(error = %e, "the token could not be written; keeping it in memory and retrying");
        self.metrics.failure("store");
        let first = !self.live().unsaved;
        self.set_live(|l| l.unsaved = true);
        if first || new.is_some() {
            self.alert(alerts::unsaved(&e.to_string(), new), vec![]);
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
                    self.alert(alerts::saved_again(self.store.path()), vec![]);
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
        let client_id = self.cfg.client_id.clone();
        let outbox = self.outbox.clone();
        let chat = self.alert_chat();
        let failures = std::sync::Arc::clone(&self.metrics.hook_failures);
        let secrets = crate::hook::secrets_of(&self.cfg);
        tokio::spawn(async move {
            match crate::hook::run(&argv, &token, &client_id, timeout, &secrets).await {
                Ok(()) => tracing::info!("on_refresh command finished"),
                Err(e) => {
                    tracing::error!(error = %e, "on_refresh command failed");
                    failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Some(chat) = chat {
                        outbox.message(chat, alerts::hook_failed(&e.to_string(), saved), vec![]);
                    }
                }
            }
        });
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
            || matches!(e, RotateError::WrongClient { .. } | RotateError::CredentialsStopped { .. });
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
            self.alert(alerts::failing(live.failures, &text, self.next_retry_fixed(&live), left), buttons);
        }
    }

    /// The retry instant for the current failure streak (see [`crate::planner::next_retry`]).
    fn next_retry_fixed(&self, _live: &Live) -> Option<DateTime<Utc>> {
        let now = self.clock.now();
        crate::planner::next_retry(&self.snapshot(now), &self.policy)
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
