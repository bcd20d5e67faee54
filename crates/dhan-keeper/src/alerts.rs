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

/// When Dhan rejects a token that should still be alive.
pub fn revoked(mode: Mode) -> String {
    let next = match mode {
        Mode::Automatic => "Getting a new one now.",
        Mode::Consent => "A login link follows.",
    };
    format!(
        "🚫 <b>Dhan token revoked</b>: Dhan rejects a token that should still be valid; someone probably generated \
         a new token elsewhere (Dhan Web or another script). {next}"
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

/// When `on_refresh` fails.
pub fn hook_failed(error: &str, saved: bool) -> String {
    let state = if saved { "The new token is saved" } else { "The new token could not be saved (see the alert above)" };
    format!("⚠️ {state}, but the on_refresh command failed: {}", escape(error))
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
