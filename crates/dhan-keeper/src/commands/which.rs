//! Which account a command acts on, when one daemon keeps several.
//!
//! A label after the command names it (`/refresh mom`). Without one, a chat that sees one account
//! means that account; otherwise `/refresh` and `/account` answer with one button per account,
//! and a paste that cannot be matched to an account by the client id inside it is held (for
//! [`HOLD_FOR`], in memory only, never logged) until a button says whose it is.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Bot;
use crate::lifecycle::{Keeper, Pick};
use crate::secret::Secret;
use crate::telegram::Button;
use crate::telegram::html::escape;

/// Callback data of an account's "/account" button (`account:LABEL`).
pub(crate) const CB_ACCOUNT: &str = "account";
/// Callback data of "this paste is for LABEL" (`paste:LABEL:N`, N the question's number, so a
/// button under an older question never applies a newer paste).
pub(crate) const CB_PASTE: &str = "paste";

/// How long a paste waits for the admin to say whose it is.
pub(crate) const HOLD_FOR: chrono::Duration = chrono::Duration::minutes(10);
/// How long after a login link was sent a tokenId is taken to answer it.
pub(crate) const LOGIN_ANSWERS_FOR: chrono::Duration = chrono::Duration::minutes(30);

/// What a button per account should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    /// `/refresh`, maybe with `force`.
    Refresh {
        /// The admin said `force`.
        force: bool,
    },
    /// `/account`.
    Account,
}

/// What the bot remembers between a question and its button: a held paste, the last login link.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// A pasted tokenId or access token waiting for its account, when it came, and the number
    /// of the question that asked about it (its buttons carry it).
    pub(crate) paste: Option<(Secret, DateTime<Utc>, u32)>,
    /// The number of the last question about a paste.
    pub(crate) asked: u32,
}

impl Bot {
    /// The keeper `label` names for `chat`, or the reply that says what to type instead.
    pub(crate) fn pick(&self, chat: i64, label: Option<&str>) -> Result<Arc<Keeper>, String> {
        // A classic config has one unlabelled account: a word after the command (`/refresh
        // now`) is not an account's name, and is ignored as it always was.
        if let [only] = self.keepers.all()
            && only.label().is_none()
        {
            return Ok(Arc::clone(only));
        }
        let visible = self.visible(chat);
        if let (None, [only]) = (label, visible.as_slice()) {
            return Ok(Arc::clone(only));
        }
        let picked = self.keepers.pick(label);
        if visible.len() < self.keepers.all().len() {
            // An account's own chat hears of its own accounts only, not of the family's labels.
            return match picked {
                Ok(k) if visible.iter().any(|v| Arc::ptr_eq(v, k)) => Ok(Arc::clone(k)),
                _ => Err(format!(
                    "❓ This chat can ask about: {}.",
                    escape(&crate::lifecycle::labels(&visible).join(", "))
                )),
            };
        }
        match picked {
            Ok(k) => Ok(Arc::clone(k)),
            Err(e @ Pick::Unknown(_)) => Err(format!("❓ {}", escape(&e.message(&self.keepers)))),
            Err(e @ Pick::Ambiguous) => Err(format!("❓ {}.", escape(&e.message(&self.keepers)))),
        }
    }

    /// `/refresh [LABEL]` and `/account [LABEL]`: act on the account, or ask which with buttons.
    pub(crate) async fn on_account(&self, chat: i64, label: Option<&str>, act: Act) {
        if label.is_none() && self.visible(chat).len() > 1 {
            let (question, data) = match act {
                Act::Refresh { .. } => ("🔄 Get a new token for which account?", crate::alerts::CB_REFRESH),
                Act::Account => ("💼 Show which account?", CB_ACCOUNT),
            };
            self.ask(chat, question, |_| true, |label| format!("{data}:{label}"));
            return;
        }
        match self.pick(chat, label) {
            Ok(k) => match act {
                Act::Refresh { force } => self.refresh(chat, &k, force).await,
                Act::Account => self.account(chat, &k).await,
            },
            Err(e) => self.reply(chat, e),
        }
    }

    /// Asks which account, with one button per account the chat may see that `fits`, its
    /// callback data made from the label by `data`.
    pub(crate) fn ask(&self, chat: i64, question: &str, fits: impl Fn(&Keeper) -> bool, data: impl Fn(&str) -> String) {
        let buttons = self
            .visible(chat)
            .iter()
            .filter(|k| fits(k))
            .filter_map(|k| k.label())
            .map(|l| Button::Callback { label: l.to_string(), data: data(l.as_str()) })
            .collect();
        self.outbox.message(chat, question, buttons);
    }

    /// Holds a paste until a button says whose it is (a newer paste replaces it); only the
    /// accounts that can take it (`consent_only`: those with an API key) get a button.
    pub(crate) fn hold(&self, chat: i64, text: &str, why: &str, consent_only: bool) {
        let now = self.now();
        let number = {
            let mut which = self.which.lock().unwrap_or_else(|e| e.into_inner());
            which.asked = which.asked.wrapping_add(1);
            which.paste = Some((Secret::new(text), now, which.asked));
            which.asked
        };
        let question = format!("🔑 {why} Which account is it for? (kept for 10 minutes)");
        self.ask(chat, &question, |k| !consent_only || can_consent(k), |label| format!("{CB_PASTE}:{label}:{number}"));
    }

    /// The paste held for question `number`, if it is still fresh; taken, so a second press
    /// does nothing. A button under an older question finds nothing.
    pub(crate) fn take_held(&self, number: Option<&str>) -> Option<Secret> {
        let now = self.now();
        let mut which = self.which.lock().unwrap_or_else(|e| e.into_inner());
        let asked = which.paste.as_ref().map(|p| p.2.to_string());
        if asked.as_deref() != number {
            return None;
        }
        let held = which.paste.take()?;
        (now - held.1 < HOLD_FOR).then_some(held.0)
    }

    /// The account a pasted tokenId belongs to, when it can be known: the only account, the
    /// only consent account a login link was made for in the last [`LOGIN_ANSWERS_FOR`] (by
    /// `/refresh` or an alert), or the only consent account.
    pub(crate) fn token_id_owner(&self) -> Option<Arc<Keeper>> {
        let all = self.keepers.all();
        if let [only] = all {
            return Some(Arc::clone(only));
        }
        let now = self.now();
        let consent: Vec<&Arc<Keeper>> = all.iter().filter(|k| can_consent(k)).collect();
        let asked: Vec<&Arc<Keeper>> = consent
            .iter()
            .copied()
            .filter(|k| k.live().login_sent_at.is_some_and(|at| now - at < LOGIN_ANSWERS_FOR))
            .collect();
        match (asked.as_slice(), consent.as_slice()) {
            ([one], _) | ([], [one]) => Some(Arc::clone(one)),
            _ => None,
        }
    }

    /// The account a pasted access token belongs to, by the client id inside it. `Err` is the
    /// reply when it names a client no account has.
    pub(crate) fn access_token_owner(&self, token: &Secret) -> Result<Option<Arc<Keeper>>, String> {
        if let [only] = self.keepers.all() {
            return Ok(Some(Arc::clone(only)));
        }
        let client = crate::dhan::jwt::decode(token.expose()).and_then(|c| c.dhan_client_id);
        let Some(client) = client else { return Ok(None) };
        match self.keepers.by_client_id(&client).as_slice() {
            [only] => Ok(Some(Arc::clone(only))),
            [] => Err(format!(
                "❌ Nothing was stored: that token is for client <code>{}</code>, and no account here has that client id \
                 (accounts: {}).",
                escape(&crate::harden::sanitize(&client, 20)),
                escape(&self.keepers.label_list())
            )),
            _ => Ok(None),
        }
    }
}

/// Whether an account can take a tokenId (the consent flow needs its API key and secret).
fn can_consent(k: &Keeper) -> bool {
    k.config().api_key.is_some() && k.config().api_secret.is_some()
}
