//! [`Keepers`]: every account one daemon keeps, each with its own [`Keeper`].
//!
//! A family config lists several accounts; each gets a complete keeper of its own (planner,
//! lock, token file, state, mint window, retry streak, alert ladder), so one account's failure,
//! cooldown or pause never delays another. What they share is only the way in: one Telegram bot,
//! one HTTP endpoint. This type is how those reach the right account: by label, by the client
//! id inside a pasted token, or all of them. A classic config is one unlabelled keeper, and
//! everything behaves as it always did.

use std::sync::Arc;

use super::Keeper;
use crate::config::Config;

/// The keepers of one daemon, in the order the config lists the accounts (never empty).
#[derive(Debug, Clone)]
pub struct Keepers {
    list: Vec<Arc<Keeper>>,
}

/// Why a label did not pick an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// No label, and there are several accounts: the caller should ask which.
    Ambiguous,
    /// No account has that label.
    Unknown(String),
}

impl Keepers {
    /// The keepers (at least one).
    pub fn new(first: Arc<Keeper>, rest: Vec<Arc<Keeper>>) -> Self {
        let mut list = vec![first];
        list.extend(rest);
        Self { list }
    }

    /// Every keeper, in config order.
    pub fn all(&self) -> &[Arc<Keeper>] {
        &self.list
    }

    /// The first account's keeper: it holds what the accounts share (the Telegram offset) and
    /// its config carries the shared keys (Telegram, admin chat, HTTP).
    pub fn first(&self) -> &Arc<Keeper> {
        // `new` and `one` never build an empty list.
        &self.list[0]
    }

    /// The shared configuration (Telegram, chats, HTTP, calendar): the first account's.
    pub fn shared(&self) -> &Config {
        self.first().config()
    }

    /// Whether there are several accounts.
    pub fn several(&self) -> bool {
        self.list.len() > 1
    }

    /// The labels, in order (empty for the classic unlabelled daemon).
    pub fn labels(&self) -> Vec<String> {
        labels(&self.list)
    }

    /// The keeper a command acts on: the one labelled `label`, or the only one when no label is
    /// given. A classic single account also answers to its client id.
    pub fn pick(&self, label: Option<&str>) -> Result<&Arc<Keeper>, Pick> {
        match (label, self.list.as_slice()) {
            (None, [only]) => Ok(only),
            (None, _) => Err(Pick::Ambiguous),
            (Some(l), _) => {
                let l = l.trim().to_ascii_lowercase();
                self.list
                    .iter()
                    .find(|k| k.label().is_some_and(|x| x.as_str() == l))
                    .or_else(|| match self.list.as_slice() {
                        [only] if only.label().is_none() && only.config().client_id.eq_ignore_ascii_case(&l) => {
                            Some(only)
                        }
                        _ => None,
                    })
                    .ok_or(Pick::Unknown(l))
            }
        }
    }

    /// The keepers of a Dhan client id (from a pasted token).
    pub fn by_client_id(&self, client_id: &str) -> Vec<&Arc<Keeper>> {
        self.list.iter().filter(|k| k.config().client_id == client_id).collect()
    }

    /// The keepers whose own alert chat is `chat` (an account's `telegram_chat_id`).
    pub fn of_chat(&self, chat: i64) -> Vec<&Arc<Keeper>> {
        self.list.iter().filter(|k| k.account_chat() == Some(chat)).collect()
    }

    /// The Prometheus text for `/metrics`: every account's series, labelled by account when
    /// there are several.
    pub fn render_metrics(&self) -> String {
        let accounts = self.list.iter().map(|k| (k.label().map(|l| l.to_string()), k.metric_families())).collect();
        crate::metrics::render(accounts, self.first().telegram_send_failures())
    }

    /// Each account's name and view.
    pub fn views(&self) -> Vec<(String, super::View)> {
        views(&self.list)
    }

    /// "mom, dad, huf" for messages.
    pub fn label_list(&self) -> String {
        self.labels().join(", ")
    }
}

/// The labels of `keepers`, in order (a classic unlabelled keeper has none).
pub fn labels(keepers: &[Arc<Keeper>]) -> Vec<String> {
    keepers.iter().filter_map(|k| k.label().map(|l| l.to_string())).collect()
}

/// Each keeper's name (its label, or the client id of the classic account) and view, for the
/// replies about several accounts.
pub fn views(keepers: &[Arc<Keeper>]) -> Vec<(String, super::View)> {
    keepers
        .iter()
        .map(|k| (k.label().map_or_else(|| k.config().client_id.clone(), |l| l.to_string()), k.view()))
        .collect()
}

impl Pick {
    /// What to tell someone who named no account or a wrong one (the words the CLI uses too).
    pub fn message(&self, keepers: &Keepers) -> String {
        match self {
            Pick::Ambiguous => crate::config::no_label(keepers.all().len(), &keepers.label_list()),
            Pick::Unknown(l) => crate::config::unknown_label(l, &keepers.label_list()),
        }
    }
}
