//! The token lifecycle: the [`Keeper`] that owns the current token and every way to replace it,
//! and the loop that asks the [`policy`](crate::policy) what is next and sleeps until then.
//!
//! Every change of token goes through [`Keeper::accept`] under one async lock, whether it came
//! from the schedule, `/refresh`, a pasted token or a consent login: save atomically, reset the
//! alert ladder, confirm on Telegram, run the hook, wake the loop. The loop never sleeps longer
//! than [`MAX_NAP`] and recomputes its plan from the [`Clock`](crate::clock::Clock) on waking,
//! so a suspended laptop or a clock jump changes the plan instead of oversleeping an expiry.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::alerts;
use crate::clock::SharedClock;
use crate::config::{Config, Mode};
use crate::dhan::{DhanClient, DhanError, Minted};
use crate::ist;
use crate::metrics::Metrics;
use crate::mint::mint_with_totp;
use crate::policy::{self, AlertStep, PolicyConfig};
use crate::state::{Alerted, Attempt, StateFile};
use crate::telegram::{Button, Outbox};
use crate::token::{StoreError, Token, TokenSource, TokenStore};

/// The longest the loop sleeps before looking at the clock again.
pub const MAX_NAP: Duration = Duration::from_secs(30);

/// Why no new token came out of an attempt.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// Dhan's one-mint-per-2-minutes rule; not an error, a wait.
    #[error("Dhan allows one new token every {}; the next one can be minted at {}", humantime::format_duration(*.cooldown), ist::human(&ist::to_ist(.until)))]
    Cooldown {
        /// When minting is allowed again.
        until: DateTime<Utc>,
        /// The configured cooldown.
        cooldown: Duration,
    },
    /// Consent mode: a human has to log in.
    #[error("consent mode needs you to log in through the link")]
    NeedsLogin,
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
            RotateError::NeedsLogin => "needs_login",
            RotateError::Dhan(e) => e.reason(),
            RotateError::WrongClient { .. } => "wrong_client",
        }
    }
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
    /// Dhan refused `RenewToken` for our tokens; go straight to minting.
    pub renew_refused: bool,
    /// Dhan rejects the current token although it should be alive.
    pub revoked: bool,
    /// Outcome of the last call to Dhan's api host.
    pub dhan_reachable: Option<bool>,
    /// When the token was last checked with `/v2/profile`.
    pub last_verify: Option<DateTime<Utc>>,
    /// Not before this instant (Dhan's mint cooldown as reported).
    pub not_before: Option<DateTime<Utc>>,
    /// When the loop plans to rotate next.
    pub next_rotation: Option<DateTime<Utc>>,
    /// When the next alert is due.
    pub next_alert: Option<DateTime<Utc>>,
    /// Consent mode: renewal was already tried for the token expiring at this instant.
    pub renew_tried_for: Option<DateTime<Utc>>,
    /// The current token is not on disk (a write failed); retried every pass of the loop.
    pub unsaved: bool,
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
        let store = TokenStore::new(cfg.token_file.clone());
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

    /// When the next mint is allowed, if not now.
    pub fn cooldown_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let from_state = self.state.get().last_mint_at.map(|t| t.with_timezone(&Utc) + chrono(self.cfg.mint_cooldown));
        let from_dhan = self.live().not_before;
        from_state.into_iter().chain(from_dhan).max().filter(|t| *t > now)
    }

    /// Gets a new token now without a human: `RenewToken` for a live token where Dhan allows it,
    /// else (automatic mode) a TOTP + PIN mint, honouring the cooldown.
    pub async fn rotate(&self, why: &str) -> Result<Token, RotateError> {
        let _guard = self.work.lock().await;
        let now = self.clock.now();
        let live = self.live();
        if let Some(tok) = self.token().filter(|t| !t.is_expired(now) && !live.revoked && !live.renew_refused) {
            match self.dhan.renew_token(&tok.access_token).await {
                Ok(minted) => return self.accept(minted, TokenSource::Renew, why),
                Err(e @ (DhanError::RenewRefused { .. } | DhanError::Api { .. } | DhanError::Rejected { .. })) => {
                    tracing::info!(reason = %e, "RenewToken is not available for this token; minting instead");
                    self.set_live(|l| l.renew_refused = true);
                }
                Err(e) => tracing::info!(reason = %e, "RenewToken failed; minting instead"),
            }
        }
        let (Some(pin), Some(totp)) = (&self.cfg.pin, &self.cfg.totp_secret) else {
            return Err(RotateError::NeedsLogin);
        };
        if let Some(until) = self.cooldown_until(now) {
            return Err(RotateError::Cooldown { until, cooldown: self.cfg.mint_cooldown });
        }
        self.state.update(|s| s.last_mint_at = Some(ist::to_ist(&now)));
        tracing::info!(why, "minting a new token with TOTP + PIN");
        match mint_with_totp(&self.dhan, pin, totp, self.clock.as_ref()).await {
            Ok(minted) => self.accept(minted, TokenSource::Totp, why),
            Err(DhanError::MintCooldown { retry_after }) => {
                let until = self.clock.now() + chrono(retry_after);
                self.set_live(|l| l.not_before = Some(until));
                Err(RotateError::Cooldown { until, cooldown: self.cfg.mint_cooldown })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Consent mode, step 3: exchange a pasted tokenId for a token.
    pub async fn consume_token_id(&self, token_id: &str) -> Result<Token, RotateError> {
        let (Some(key), Some(secret)) = (&self.cfg.api_key, &self.cfg.api_secret) else {
            return Err(RotateError::Dhan(DhanError::Rejected {
                message: "a tokenId needs api_key and api_secret in the config".into(),
            }));
        };
        let _guard = self.work.lock().await;
        let minted = self.dhan.consume_consent(token_id, key, secret).await?;
        self.accept(minted, TokenSource::Consent, "consent login")
    }

    /// Installs a pasted access token after `/v2/profile` confirms it is alive and ours.
    pub async fn install_pasted(&self, access_token: crate::secret::Secret) -> Result<Token, RotateError> {
        let _guard = self.work.lock().await;
        let profile = self.dhan.profile(&access_token).await?;
        let claims = crate::dhan::jwt::decode(access_token.expose());
        let from_profile = ist::parse_token_validity(&profile.token_validity);
        let from_jwt = claims.as_ref().and_then(|c| c.expires_at()).map(|t| ist::to_ist(&t));
        // The JWT's `exp` is exact; `tokenValidity` is cut to the minute, so only a fallback.
        let Some(expires_at) = from_jwt.or(from_profile) else {
            return Err(RotateError::Dhan(DhanError::Malformed {
                what: "profile",
                detail: "neither the token nor Dhan says when it expires".into(),
            }));
        };
        let client_id = Some(profile.dhan_client_id.clone()).filter(|c| !c.is_empty());
        let minted = Minted { access_token, expires_at, client_id, client_name: None };
        self.accept(minted, TokenSource::Manual, "pasted token")
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
        // Dhan has issued it, so the previous token is already dead: whatever the disk says, this
        // one is kept (in memory, served over HTTP and handed to the hook) and saved as soon as
        // the disk allows.
        let saved = self.store.save(&token);
        *lock(&self.token) = Some(token.clone());
        self.events.publish(&token, &self.cfg.client_id);
        self.state.update(|s| {
            s.alerted = None;
            s.last_attempt =
                Some(Attempt { at: ist::to_ist(&now), ok: true, what: format!("new token via {source} ({why})") });
        });
        self.set_live(|l| {
            *l = Live {
                renew_refused: l.renew_refused,
                unsaved: saved.is_err(),
                dhan_reachable: Some(true),
                last_verify: Some(now),
                ..Live::default()
            };
        });
        self.metrics.rotation(source.as_str(), now.timestamp());
        match saved {
            Ok(()) => {
                tracing::info!(%source, expires_at = %token.expires_at, "new token saved to {}", self.store.path().display());
                self.alert(alerts::rotated(&token, now), vec![]);
            }
            Err(e) => self.save_failed(&e, Some(&token)),
        }
        self.run_hook(token.clone());
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

    fn run_hook(&self, token: Token) {
        let Some(argv) = self.cfg.on_refresh.clone() else { return };
        let timeout = self.cfg.hook_timeout;
        let client_id = self.cfg.client_id.clone();
        let outbox = self.outbox.clone();
        let chat = self.alert_chat();
        let failures = std::sync::Arc::clone(&self.metrics.hook_failures);
        tokio::spawn(async move {
            match crate::hook::run(&argv, &token, &client_id, timeout).await {
                Ok(()) => tracing::info!("on_refresh command finished"),
                Err(e) => {
                    tracing::error!(error = %e, "on_refresh command failed");
                    failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Some(chat) = chat {
                        outbox.message(chat, alerts::hook_failed(&e.to_string()), vec![]);
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
        let hopeless =
            matches!(e, RotateError::Dhan(d) if !d.is_transient()) || matches!(e, RotateError::WrongClient { .. });
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
        if alert {
            let live = self.live();
            let next = self.next_retry_fixed(&live);
            let left = self.usable_token().map(|t| t.remaining(now));
            self.alert(
                alerts::failing(live.failures, &text, next, left),
                vec![alerts::refresh_button(self.cfg.mode())],
            );
        }
    }

    /// Checks the token with `/v2/profile`; marks it revoked when Dhan rejects it (or says it
    /// belongs to another client). The first check after start is the saved token's.
    pub async fn verify(&self) {
        let Some(tok) = self.usable_token() else { return };
        let first = self.live().last_verify.is_none();
        let result = match self.dhan.profile(&tok.access_token).await {
            Ok(p) if !p.dhan_client_id.is_empty() && p.dhan_client_id != self.cfg.client_id => {
                Err(DhanError::AuthFailed { message: "Dhan says the token belongs to another client id".into() })
            }
            other => other,
        };
        let now = self.clock.now();
        match result {
            Ok(_) => {
                if first {
                    tracing::info!(
                        expires_at = %ist::human(&tok.expires_at),
                        left = %ist::human_duration(tok.remaining(now)),
                        "reusing the saved token (Dhan accepts it)"
                    );
                }
                self.set_live(|l| {
                    l.dhan_reachable = Some(true);
                    l.last_verify = Some(now);
                });
            }
            Err(DhanError::AuthFailed { message }) => {
                // Only if the token we checked is still the current one.
                if self.token().is_some_and(|t| t.access_token.expose() == tok.access_token.expose()) {
                    tracing::warn!(%message, "Dhan rejects a token that should be alive: revoked");
                    self.set_live(|l| {
                        l.revoked = true;
                        l.dhan_reachable = Some(true);
                        l.last_verify = Some(now);
                    });
                    self.metrics.failure("revoked");
                    self.alert(alerts::revoked(self.cfg.mode()), vec![]);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not check the token with Dhan");
                self.set_live(|l| {
                    l.dhan_reachable = Some(false);
                    l.last_verify = Some(now);
                });
            }
        }
    }

    /// Consent mode: a fresh login link (generates a consent at Dhan).
    pub async fn login_url(&self) -> Result<String, DhanError> {
        let (Some(key), Some(secret)) = (&self.cfg.api_key, &self.cfg.api_secret) else {
            return Err(DhanError::Rejected {
                message: "the consent flow needs api_key and api_secret in the config".into(),
            });
        };
        let consent = self.dhan.generate_consent(key, secret).await?;
        Ok(self.dhan.consent_login_url(&consent).to_string())
    }

    /// One pass of the loop: do what is due, return when to look again.
    pub async fn step(&self) -> DateTime<Utc> {
        self.heal_file();
        let now = self.clock.now();
        let mut horizon = now + chrono(MAX_NAP);
        if self.live().unsaved {
            horizon = now + chrono::Duration::seconds(1);
        }
        if self.state.get().paused {
            self.set_live(|l| {
                l.next_rotation = None;
                l.next_alert = None;
            });
            return horizon;
        }
        let mut wake = horizon;

        // 1. Notice revocation.
        if let Some(last) = self.usable_token().map(|_| self.live().last_verify) {
            let due = last.map_or(now, |t| t + chrono(self.cfg.verify_every));
            if due <= now {
                self.verify().await;
                return self.clock.now();
            }
            wake = wake.min(due);
        }

        // 2. Rotation.
        let live = self.live();
        let usable = self.usable_token();
        let expires = usable.as_ref().map(|t| t.expires_at.with_timezone(&Utc));
        let mut due = policy::next_rotation(now, expires, None, &self.policy);
        if let Some(retry) = self.next_retry_fixed(&live) {
            due = due.max(retry);
        }
        if let Some(nb) = live.not_before {
            due = due.max(nb);
        }
        let automatic = self.cfg.mode() == Mode::Automatic;
        let try_renew = !automatic && !live.renew_refused && expires.is_some() && live.renew_tried_for != expires;
        if automatic || try_renew {
            if automatic && let Some(c) = self.cooldown_until(now) {
                due = due.max(c);
            }
            self.set_live(|l| l.next_rotation = Some(due));
            if due <= now {
                if try_renew {
                    self.set_live(|l| l.renew_tried_for = expires);
                }
                match self.rotate("scheduled").await {
                    Ok(_) => {}
                    Err(RotateError::Cooldown { until, .. }) => self.set_live(|l| l.not_before = Some(until)),
                    Err(RotateError::NeedsLogin) => {}
                    Err(e) => self.record_failure(&e),
                }
                return self.clock.now();
            }
            wake = wake.min(due);
        } else {
            self.set_live(|l| l.next_rotation = None);
        }

        // 3. The alert ladder: always in consent mode, in automatic mode once rotation has failed
        // (or the token is gone and a mint is not possible right now).
        let live = self.live();
        // The ladder follows the current token even once it has expired; a revoked or missing
        // token is "no token" (one alert).
        let expires = self.token().filter(|_| !live.revoked).map(|t| t.expires_at.with_timezone(&Utc));
        if self.alert_chat().is_some() && (!automatic || live.failures > 0) {
            let sent = self.state.get().alerted.filter(|a| a.expires_at.map(|e| e.with_timezone(&Utc)) == expires);
            let sent_step = sent.map(|a| a.step);
            let step = match expires {
                Some(exp) => policy::alert_due(now, exp, sent_step, &self.policy),
                None => (sent_step.is_none()).then_some(AlertStep::Expired),
            };
            if let Some(step) = step {
                self.send_expiry_alert(step, expires, now, &live).await;
                self.state.update(|s| s.alerted = Some(Alerted { expires_at: expires.map(|e| ist::to_ist(&e)), step }));
            }
            let next = expires.and_then(|exp| policy::next_alert_at(exp, step.or(sent_step), &self.policy));
            self.set_live(|l| l.next_alert = next);
            if let Some(n) = next {
                wake = wake.min(n);
            }
        } else {
            let next = expires.and_then(|exp| policy::next_alert_at(exp, None, &self.policy)).filter(|_| !automatic);
            self.set_live(|l| l.next_alert = next);
        }
        if let Some(exp) = expires.filter(|e| *e > now) {
            wake = wake.min(exp);
        }
        wake
    }

    /// The retry instant for the current failure streak, with jitter fixed per failure so the
    /// plan does not move every time the loop wakes.
    fn next_retry_fixed(&self, live: &Live) -> Option<DateTime<Utc>> {
        let at = live.last_failure_at?;
        let jitter = (at.timestamp_subsec_nanos() % 1000) as f64 / 1000.0;
        Some(at + chrono(policy::backoff(live.failures, jitter, &self.policy)))
    }

    async fn send_expiry_alert(
        &self,
        step: AlertStep,
        expires: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        live: &Live,
    ) {
        let mode = self.cfg.mode();
        let (url, buttons) = match mode {
            Mode::Consent => {
                let url = match self.login_url().await {
                    Ok(u) => Some(u),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not get a login link for the alert");
                        None
                    }
                };
                let mut b = alerts::login_buttons(url.as_deref(), self.cfg.totp_secret.is_some());
                b.push(alerts::refresh_button(mode));
                (url, b)
            }
            Mode::Automatic => (None, vec![alerts::refresh_button(mode)]),
        };
        tracing::info!(?step, "sending expiry alert");
        let text = alerts::expiry(step, mode, expires, now, live.last_error.as_deref(), url.as_deref());
        self.alert(text, buttons);
    }
}

/// Runs the loop until `shutdown`.
pub async fn run(keeper: std::sync::Arc<Keeper>, shutdown: CancellationToken) {
    loop {
        // Shutdown abandons a step mid-call: every await in it is a network call or a sleep, and
        // a token Dhan has returned is saved synchronously before the next await.
        let wake_at = tokio::select! {
            _ = shutdown.cancelled() => return,
            w = keeper.step() => w,
        };
        let nap = (wake_at - keeper.clock.now()).to_std().unwrap_or(Duration::ZERO);
        let nap = nap.clamp(Duration::from_millis(20), MAX_NAP);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = keeper.wake.notified() => {}
            _ = tokio::time::sleep(nap) => {}
        }
    }
}
