//! What the daemon tells the trader unprompted: the expiry ladder, confirmations, failures,
//! revocations. Plain functions from facts to HTML, so every message is testable and escaped.

use chrono::{DateTime, Utc};

use crate::config::Mode;
use crate::ist;
use crate::policy::AlertStep;
use crate::telegram::Button;
use crate::telegram::html::escape;
use crate::token::Token;

/// Callback data of the "Refresh now" button.
pub const CB_REFRESH: &str = "refresh";
/// Callback data of the "TOTP code" button.
pub const CB_TOTP: &str = "totp";

/// The "Refresh now" button (automatic mode) or "New login link" (consent mode).
pub fn refresh_button(mode: Mode) -> Button {
    let label = match mode {
        Mode::Automatic => "🔄 Refresh now",
        Mode::Consent => "🔗 New login link",
    };
    Button::Callback { label: label.into(), data: CB_REFRESH.into() }
}

/// The button that answers with the TOTP code current when pressed.
pub fn totp_button() -> Button {
    Button::Callback { label: "🔢 TOTP code".into(), data: CB_TOTP.into() }
}

/// The buttons under a consent login link: open it, and (with a TOTP secret) get the code
/// current when pressed.
pub fn login_buttons(url: Option<&str>, has_totp: bool) -> Vec<Button> {
    let mut b: Vec<Button> =
        url.map(|u| Button::Link { label: "Open Dhan login".into(), url: u.to_string() }).into_iter().collect();
    if has_totp {
        b.push(totp_button());
    }
    b
}

/// A step of the expiry ladder. `expires_at` is `None` when there is no usable token at all.
pub fn expiry(
    step: AlertStep,
    mode: Mode,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    last_error: Option<&str>,
    login_url: Option<&str>,
) -> String {
    let mut s = match (step, expires_at) {
        (_, None) => "⛔ <b>No valid Dhan token.</b> Trading programs cannot use the API.".to_string(),
        (AlertStep::Expired, Some(exp)) if exp <= now => format!(
            "⛔ <b>Dhan token expired</b> at {}. Trading programs cannot use the API.",
            ist::human(&ist::to_ist(&exp))
        ),
        (step, Some(exp)) => format!(
            "{} <b>Dhan token expires in {}</b> ({}).",
            if step == AlertStep::Early { "⚠️" } else { "🚨" },
            ist::human_duration(exp - now),
            ist::human(&ist::to_ist(&exp))
        ),
    };
    if let Some(e) = last_error {
        s.push_str(&format!("\nAutomatic rotation is failing: {}", escape(e)));
    }
    match (mode, login_url) {
        (Mode::Consent, Some(url)) => s.push_str(&login_instructions(url)),
        (Mode::Consent, None) => s.push_str("\nSend /refresh for a login link (Dhan did not give one just now)."),
        (Mode::Automatic, _) => s.push_str("\nStill retrying on its own; tap Refresh now to try at once."),
    }
    s
}

/// How to log in through the consent link.
pub fn login_instructions(url: &str) -> String {
    format!(
        "\n\n1. Open <a href=\"{}\">the Dhan login page</a> on your phone's browser.\n2. Log in (tap 🔢 TOTP code for the \
         code when asked).\n3. Paste the address of the page you land on here.",
        escape(url)
    )
}

/// After each new token.
pub fn rotated(token: &Token, now: DateTime<Utc>) -> String {
    let source = token.source.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into());
    format!(
        "✅ New Dhan token ({}), valid until {} ({} left).",
        escape(&source),
        ist::human(&token.expires_at),
        ist::human_duration(token.remaining(now))
    )
}

/// After `failures` failed attempts in a row.
pub fn failing(
    failures: u32,
    error: &str,
    next_try: Option<DateTime<Utc>>,
    token_left: Option<chrono::Duration>,
) -> String {
    let mut s = format!("❌ <b>Token rotation failed {failures}× in a row</b>: {}", escape(error));
    if let Some(left) = token_left {
        s.push_str(&format!("\nThe current token still has {} left.", ist::human_duration(left)));
    }
    if let Some(t) = next_try {
        s.push_str(&format!("\nNext try at {}.", ist::human(&ist::to_ist(&t))));
    }
    s
}

/// When Dhan keeps rejecting a token that should still be alive (after the re-probes).
pub fn revoked(mode: Mode, rejections: u32, over: chrono::Duration, next: Option<DateTime<Utc>>) -> String {
    let next = match (mode, next) {
        (Mode::Automatic, Some(t)) => {
            format!("Getting a new one at {} (Dhan's mint window allowing).", ist::human_secs(&ist::to_ist(&t)))
        }
        (Mode::Automatic, None) => "Getting a new one now.".to_string(),
        (Mode::Consent, _) => "A login link follows.".to_string(),
    };
    format!(
        "🚫 <b>Dhan token revoked</b>: Dhan rejected a token that should still be valid {rejections} times over {}; \
         someone probably generated a new token elsewhere (Dhan Web or another script). {next}",
        ist::human_duration(over)
    )
}

/// Dhan refused the PIN, client id or TOTP setup: automatic minting stops.
pub fn credentials_stopped(error: &str, token_left: Option<chrono::Duration>) -> String {
    let mut s = format!(
        "🔐 <b>Dhan refused the credentials</b>: {}\nAutomatic minting is <b>stopped</b> for this account so Dhan does \
         not lock it after repeated wrong PINs. Fix <code>pin</code>, <code>totp_secret</code> or <code>client_id</code> \
         in the config and restart (the stop lifts when they change), or press Refresh to try once more.",
        escape(error)
    );
    if let Some(left) = token_left {
        s.push_str(&format!("\nThe current token still has {} left.", ist::human_duration(left)));
    }
    s
}

/// Dhan refused a mint inside its window while the trader needs a token.
pub fn mint_refused(cooldown: std::time::Duration, next: DateTime<Utc>) -> String {
    format!(
        "⏳ <b>Dhan refused a new token</b>: it allows one every 2 minutes and a refusal restarts that window. \
         Waiting the full {}; next attempt at {}.",
        humantime::format_duration(cooldown),
        ist::human_secs(&ist::to_ist(&next))
    )
}

/// The next attempt comes after the current token's expiry.
pub fn gap(next: DateTime<Utc>, expires: DateTime<Utc>) -> String {
    format!(
        "⚠️ <b>The token will expire before the next attempt</b>: it expires {} and the next attempt to replace it \
         is {}. Press Refresh to try now.",
        ist::human_secs(&ist::to_ist(&expires)),
        ist::human_secs(&ist::to_ist(&next))
    )
}

/// A pasted Dhan Web (`SELF`) token was replaced by an `APP` token.
pub fn replaced_web_token() -> String {
    "\nℹ️ This replaces the Dhan Web token you pasted (Dhan would not renew it); the new one is an API (APP) token, \
     which Dhan's 200-level depth feed does not accept."
        .to_string()
}

/// Dhan says API orders from this machine will be refused.
pub fn orders_refused(s: &crate::dhan::IpStatus) -> String {
    format!(
        "🌐 <b>Dhan will refuse API orders from this machine</b>: {}.\nRegister this address as your primary or \
         secondary static IP on Dhan Web (DhanHQ Trading APIs → Static IP; a change locks it for 7 days), or run \
         your strategies from a registered address. Tokens are not affected.",
        escape(&s.summary())
    )
}

/// When the token could not be written to disk.
pub fn unsaved(error: &str, new: Option<&Token>) -> String {
    let mut s = format!("💾 <b>The token file cannot be written</b>: {}", escape(error));
    if let Some(t) = new {
        s.push_str(&format!(
            "\nA new token ({}, valid until {}) is kept in memory, served on /token and given to on_refresh;              saving is retried every second.",
            escape(&t.source.map(|x| x.to_string()).unwrap_or_default()),
            ist::human(&t.expires_at)
        ));
    } else {
        s.push_str("\nThe token is kept in memory; saving is retried every second.");
    }
    s
}

/// When a failed write succeeded later.
pub fn saved_again(path: &std::path::Path) -> String {
    format!("💾 The token file is written again: {}", escape(&path.display().to_string()))
}

/// When `on_refresh` fails; `saved` says whether the token file holds the new token.
pub fn hook_failed(error: &str, saved: bool) -> String {
    let first = if saved {
        "The new token is saved"
    } else {
        "The new token could not be saved yet (kept in memory, see the alert above)"
    };
    format!("⚠️ {first}, but the on_refresh command failed: {}", escape(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("valid").with_timezone(&Utc)
    }

    #[test]
    fn ladder_messages_say_how_long_is_left_in_ist() {
        let exp = at("2026-11-26T09:15:00+05:30");
        let early = expiry(
            AlertStep::Early,
            Mode::Automatic,
            Some(exp),
            at("2026-11-26T07:15:00+05:30"),
            Some("Dhan <500>"),
            None,
        );
        assert!(early.contains("expires in 2h 00m"), "{early}");
        assert!(early.contains("Thu 26 Nov 09:15 IST"), "{early}");
        assert!(early.contains("Dhan &lt;500&gt;"), "server text is escaped: {early}");
        let dead = expiry(
            AlertStep::Expired,
            Mode::Consent,
            Some(exp),
            at("2026-11-26T09:16:00+05:30"),
            None,
            Some("https://x/?a=1&b=2"),
        );
        assert!(dead.contains("expired"), "{dead}");
        assert!(dead.contains("href=\"https://x/?a=1&amp;b=2\""), "{dead}");
    }

    #[test]
    fn the_hook_alert_says_whether_the_token_was_saved() {
        assert!(hook_failed("boom", true).contains("The new token is saved"));
        let unsaved = hook_failed("boom", false);
        assert!(unsaved.contains("could not be saved") && !unsaved.contains("is saved"), "{unsaved}");
    }
}
