//! An account's name on what its keeper says, when one daemon keeps several accounts.
//!
//! A family's alerts arrive in one chat, so each must say whose it is: every alert, confirmation
//! and reply about an account starts with its label, and its buttons carry the label so a press
//! acts on that account. An account may also have a chat of its own that reads its alerts. A
//! classic single-account keeper has no label and says everything exactly as before.

use super::Keeper;
use crate::config::Label;
use crate::telegram::Button;

/// An account's name in a daemon that keeps several, and the extra chat its alerts go to.
#[derive(Debug, Clone)]
pub(crate) struct AccountTag {
    pub(super) label: Label,
    pub(super) chat: Option<i64>,
}

/// `html` prefixed with the account's label, when it has one.
pub(crate) fn tag(label: Option<&str>, html: &str) -> String {
    match label {
        Some(l) => format!("<b>{}</b> · {html}", crate::telegram::html::escape(l)),
        None => html.to_string(),
    }
}

impl Keeper {
    /// Names this keeper as one account of several: its alerts and confirmations start with
    /// `label`, its buttons name it, and its alerts also go to `chat` (the account's own
    /// `telegram_chat_id`) when that is not the shared alert chat.
    pub fn for_account(mut self, label: Label, chat: Option<i64>) -> Self {
        self.account = Some(AccountTag { label, chat });
        self
    }

    /// The account's label when the daemon keeps several accounts.
    pub fn label(&self) -> Option<&Label> {
        self.account.as_ref().map(|a| &a.label)
    }

    /// The account's own alert chat, if it has one.
    pub fn account_chat(&self) -> Option<i64> {
        self.account.as_ref().and_then(|a| a.chat).filter(|_| self.outbox.is_enabled())
    }

    /// `html` as this account says it: prefixed with the label when there are several accounts.
    pub fn tagged(&self, html: &str) -> String {
        tag(self.label().map(Label::as_str), html)
    }

    /// `buttons` as this account's: callback data gains `:label`, so a press acts on it.
    pub fn tagged_buttons(&self, buttons: Vec<Button>) -> Vec<Button> {
        let Some(label) = self.label() else { return buttons };
        buttons
            .into_iter()
            .map(|b| match b {
                Button::Callback { label: text, data } => {
                    Button::Callback { label: text, data: format!("{data}:{label}") }
                }
                other => other,
            })
            .collect()
    }

    /// The span every log line about this account runs in: `account{label=mom}` with several
    /// accounts, the caller's own span otherwise.
    pub fn span(&self) -> tracing::Span {
        match self.label() {
            Some(label) => tracing::info_span!("account", %label),
            None => tracing::Span::current(),
        }
    }

    /// A notice about what every account shares (the machine's clock, the calendar): to the
    /// shared alert chat, without a label.
    pub(super) fn notice(&self, html: String, buttons: Vec<Button>) {
        if let Some(chat) = self.alert_chat() {
            self.outbox.message(chat, html, buttons);
        }
    }

    /// Who hears about this host's own trouble (its token file, its hook), and how it is named:
    /// in a fleet every host sends these itself, prefixed with its node name, since only it
    /// knows and sending needs no lease (only polling the bot does). Alone: the alert chats.
    pub(super) fn host_voice(&self) -> HostVoice {
        let node = self.coordinator().fleet_ref().map(|f| f.node().to_string());
        let chat = match node {
            Some(_) => self.cfg.telegram_chat_id.filter(|_| self.outbox.is_enabled()),
            None => self.alert_chat(),
        };
        let mut chats: Vec<i64> = chat.into_iter().collect();
        chats.extend(self.account_chat().filter(|c| chat.is_some_and(|shared| shared != *c)));
        HostVoice { chats, node, label: self.label().map(|l| l.to_string()), outbox: self.outbox.clone() }
    }

    /// An alert about this host only: see [`host_voice`](Self::host_voice).
    pub(super) fn host_alert(&self, html: String) {
        self.host_voice().say(&html);
    }

    pub(super) fn alert(&self, html: String, buttons: Vec<Button>) {
        let Some(chat) = self.alert_chat() else { return };
        let html = self.tagged(&html);
        if let Some(own) = self.account_chat().filter(|c| *c != chat) {
            // The account's own chat reads; buttons there would only say "admin only".
            let read_only: Vec<Button> =
                buttons.iter().filter(|b| !matches!(b, Button::Callback { .. })).cloned().collect();
            self.outbox.message(own, html.clone(), read_only);
        }
        self.outbox.message(chat, html, self.tagged_buttons(buttons));
    }
}

/// Where a host's own trouble goes, and with which names; built before a task that reports later.
#[derive(Debug, Clone)]
pub(crate) struct HostVoice {
    chats: Vec<i64>,
    node: Option<String>,
    label: Option<String>,
    outbox: crate::telegram::Outbox,
}

impl HostVoice {
    /// Sends `html`, prefixed with the node (in a fleet) and the label (with several accounts).
    pub(crate) fn say(&self, html: &str) {
        let html = match &self.node {
            Some(node) => format!("🖥 <b>{}</b>: {html}", crate::telegram::html::escape(node)),
            None => html.to_string(),
        };
        let html = tag(self.label.as_deref(), &html);
        for chat in &self.chats {
            self.outbox.message(*chat, html.clone(), vec![]);
        }
    }
}
