//! What the admin's commands do to one account: `/refresh`, `/account`, the consent login link,
//! and pastes. Each reply about an account of several starts with its label.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::Bot;
use crate::account;
use crate::alerts;
use crate::config::Mode;
use crate::ist;
use crate::lifecycle::{Keeper, RotateError};
use crate::paste::{self, Paste};
use crate::telegram::html::escape;

impl Bot {
    /// Replies about `k`, labelled when there are several accounts.
    fn say(&self, chat: i64, k: &Keeper, html: &str) {
        self.reply(chat, k.tagged(html));
    }

    pub(crate) async fn account(&self, chat: i64, k: &Keeper) {
        match k.account().await {
            None => self.say(chat, k, "⛔ No valid token, so Dhan cannot be asked. Send /refresh first."),
            Some(Ok((f, h, p))) => {
                let blocks: Vec<String> = account::summary(&f, &h, &p, 10).iter().map(|b| escape(b)).collect();
                self.say(chat, k, &blocks.join("\n\n"));
            }
            Some(Err(e)) => self.say(chat, k, &format!("❌ Could not read the account: {}", escape(&e.to_string()))),
        }
    }

    pub(crate) async fn refresh(&self, chat: i64, k: &Keeper, force: bool) {
        match k.config().mode() {
            Mode::Automatic => {
                // Checked before "Getting a new token…" so a refusal is the only reply; `rotate`
                // checks again (Dhan's own refusal can still come back as the same error).
                if let Some(until) = k.cooldown_until(k.now()) {
                    self.say(chat, k, &cooldown_text(k, until));
                    return;
                }
                if let Some(stop) = k.credential_stop() {
                    self.say(
                        chat,
                        k,
                        &format!(
                            "🔐 Dhan refused the credentials at {} ({}). Trying once more as you asked…",
                            ist::human(&stop.at),
                            escape(&stop.message)
                        ),
                    );
                }
                self.say(chat, k, "🔄 Getting a new token…");
                let asker = if force { crate::gate::Asker::AdminForced } else { crate::gate::Asker::Admin };
                match k.rotate("/refresh", asker).instrument(k.span()).await {
                    Ok(t) if Some(chat) != k.alert_chat() => self.say(chat, k, &alerts::rotated(&t, k.now())),
                    Ok(_) => {} // the confirmation went to this chat already
                    Err(RotateError::Cooldown { until, .. }) => self.say(chat, k, &cooldown_text(k, until)),
                    Err(e) => self.say(chat, k, &format!("❌ No new token: {}", escape(&e.to_string()))),
                }
            }
            Mode::Consent => self.send_login(chat, k).await,
        }
    }

    async fn send_login(&self, chat: i64, k: &Keeper) {
        match k.login_url().await {
            Ok(url) => {
                let mut text = "🔗 <b>Log in to Dhan to get a new token</b>".to_string();
                if let Some(code) = k.totp_now() {
                    text.push_str(&format!(
                        "\nTOTP code now: <code>{}</code> ({} s left; tap 🔢 for a fresh one)",
                        code.digits, code.secs_left
                    ));
                }
                text.push_str(&alerts::login_instructions(&url));
                let buttons = alerts::login_buttons(Some(&url), k.config().totp_secret.is_some());
                self.outbox.message(chat, k.tagged(&text), k.tagged_buttons(buttons));
            }
            Err(e) => {
                self.say(chat, k, &format!("❌ Dhan did not give a login link: {}", escape(&e.to_string())));
            }
        }
    }

    /// A plain message from the admin chat: a login address, a tokenId or an access token. It
    /// goes to the account it belongs to, or is held while the admin says which.
    pub(crate) async fn paste(&self, chat: i64, text: &str) {
        let classified = paste::classify(text);
        let consent_only = matches!(classified, Paste::TokenId(_));
        let owner = match classified {
            Paste::TokenId(_) => Ok(self.token_id_owner()),
            Paste::AccessToken(t) => self.access_token_owner(&t),
            Paste::UrlWithoutTokenId => {
                self.reply(
                    chat,
                    "That link has no tokenId. Paste the address of the page you land on <i>after</i> logging in; it \
                     contains <code>?tokenId=…</code>.",
                );
                return;
            }
            Paste::Unrecognised => {
                self.reply(
                    chat,
                    "❌ Nothing was stored: that is not a login address, a tokenId or an access token. I expected the \
                     address you land on after logging in (with <code>tokenId=</code>), a tokenId, or an access token. \
                     Send /help for commands.",
                );
                return;
            }
        };
        match owner {
            Ok(Some(k)) => self.paste_into(chat, &k, text).await,
            Ok(None) => self.hold(chat, text, "I cannot tell which account this is for.", consent_only),
            Err(reply) => self.reply(chat, reply),
        }
    }

    /// The held paste, now that the admin said whose it is.
    pub(crate) async fn paste_held(&self, chat: i64, k: &Arc<Keeper>, number: Option<&str>) {
        match self.take_held(number) {
            Some(text) => self.paste_into(chat, k, text.expose()).await,
            None => self.reply(
                chat,
                "⌛ That paste is no longer kept (it was used, replaced by a newer paste, or 10 minutes passed); paste \
                 it again.",
            ),
        }
    }

    async fn paste_into(&self, chat: i64, k: &Keeper, text: &str) {
        let result = match paste::classify(text) {
            Paste::TokenId(id) => {
                self.say(chat, k, "🔑 Got a tokenId; asking Dhan for the token…");
                k.consume_token_id(&id).instrument(k.span()).await
            }
            Paste::AccessToken(t) => {
                self.say(chat, k, "🔑 Got an access token; checking it with Dhan…");
                k.install_pasted(t).instrument(k.span()).await
            }
            // Classified before it was held or routed.
            Paste::UrlWithoutTokenId | Paste::Unrecognised => return,
        };
        match result {
            Ok(t) if Some(chat) != k.alert_chat() => self.say(chat, k, &alerts::rotated(&t, k.now())),
            Ok(_) => {}
            Err(e) => self.say(chat, k, &format!("❌ Nothing was stored: {}", escape(&paste_error(&e)))),
        }
    }
}

/// The reply when Dhan's mint window is closed, never hiding a credential error.
fn cooldown_text(k: &Keeper, until: DateTime<Utc>) -> String {
    let mut s = format!(
        "⏳ Dhan allows one new token every {} counted from the last attempt. Try again in {} (after {}).",
        humantime::format_duration(k.config().mint_cooldown),
        ist::human_duration(until - k.now()),
        ist::to_ist(&until).format("%H:%M:%S IST")
    );
    if let Some(stop) = k.credential_stop() {
        s.push_str(&format!(
            "\n🔐 The last attempt failed because Dhan refused the credentials ({}): fix <code>pin</code>, \
             <code>totp_secret</code> or <code>client_id</code> first.",
            escape(&stop.message)
        ));
    }
    s
}

fn paste_error(e: &RotateError) -> String {
    match e {
        RotateError::Dhan(crate::dhan::DhanError::AuthFailed { .. }) => {
            "Dhan rejects that token (expired, replaced by a newer one, or not a Dhan token).".into()
        }
        other => other.to_string(),
    }
}
