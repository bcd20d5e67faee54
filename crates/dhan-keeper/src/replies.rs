//! What the keeper says about itself: `/start`, `/status` and `/healthz`, as pure functions of a
//! [`View`] (one consistent snapshot), so every reply is tested as text. With several accounts,
//! one compact block per account (`accounts.rs`).

mod accounts;

pub use accounts::{healthz_many, severity, start_many, status_many};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::config::Mode;
use crate::ist;
use crate::lifecycle::View;
use crate::telegram::html::escape;

/// `Thu 26 Nov 08:45 IST (in 23h 10m)`, or `now`.
pub fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if t <= now {
        return "now".into();
    }
    format!("{} (in {})", ist::human_far(&ist::to_ist(&t), &now), ist::human_duration(t - now))
}

/// `🟢 valid, 23h 10m left`, `🚫 revoked …`, `⛔ expired at …`, `⛔ no token`.
pub fn token_line(v: &View) -> String {
    match (&v.token, v.revoked) {
        (None, _) => "⛔ no token".into(),
        (Some(_), true) => "🚫 revoked by Dhan (a newer token was generated elsewhere)".into(),
        (Some(t), false) if t.expires_at <= v.now => format!("⛔ expired at {}", ist::human(&t.expires_at)),
        (Some(t), false) => {
            let left = t.expires_at.with_timezone(&Utc) - v.now;
            let mark =
                if left < chrono::Duration::from_std(v.alert_before).unwrap_or_default() { "🟡" } else { "🟢" };
            format!("{mark} valid, {} left", ist::human_duration(left))
        }
    }
}

/// The `/start` text.
pub fn start_text(v: &View) -> String {
    let paused = if v.paused { "⏸ paused (/resume)" } else { "▶️ active" };
    format!(
        "👋 <b>dhan-keeper</b> v{}\nMode: {}\nToken: {}\nRotation and alerts: {paused}\nClient: <code>{}</code>\n\nSend /help for commands.",
        env!("CARGO_PKG_VERSION"),
        escape(&v.mode.to_string()),
        token_line(v),
        escape(&v.client_id),
    )
}

/// The `/status` text.
pub fn status_text(v: &View) -> String {
    let mut s = format!("<b>Token</b>: {}", token_line(v));
    if let Some(t) = &v.token {
        s.push_str(&format!("\nExpires: {}", ist::human(&t.expires_at)));
        let source = t.source.map(|x| x.to_string()).unwrap_or_else(|| "unknown (older file)".into());
        match t.obtained_at {
            Some(at) => s.push_str(&format!("\nSource: {} · obtained {}", escape(&source), ist::human(&at))),
            None => s.push_str(&format!("\nSource: {}", escape(&source))),
        }
    }
    match &v.last_attempt {
        Some(a) => s.push_str(&format!(
            "\nLast refresh: {} {} — {}",
            if a.ok { "✅" } else { "❌" },
            ist::human(&a.at),
            escape(&a.what)
        )),
        None => s.push_str("\nLast refresh: none since this daemon started keeping state"),
    }
    s.push_str(&trouble_lines(v));
    s.push_str(&plan_lines(v));
    s.push_str(&dhan_lines(v));
    if let Some(f) = &v.fleet {
        s.push_str(&format!("\n{}", escape(&f.line())));
    }
    s
}

/// Failures, a suspicion being checked, a credential stop, an unwritable file.
pub(crate) fn trouble_lines(v: &View) -> String {
    let mut s = String::new();
    if v.failures > 0 {
        s.push_str(&format!("\nFailures in a row: {}", v.failures));
    }
    if let Some(sus) = &v.suspect {
        s.push_str(&format!(
            "\n🔎 Dhan rejected the token {}× ({}); re-checking before replacing it",
            sus.rejections,
            escape(&sus.message)
        ));
    }
    if let Some(stop) = &v.credential_stop {
        s.push_str(&format!(
            "\n🔐 Automatic minting stopped: Dhan refused the credentials at {} ({}). Fix the config or press /refresh.",
            ist::human(&stop.at),
            escape(&stop.message)
        ));
    }
    if v.unsaved {
        s.push_str("\n💾 Token file: cannot be written; the token is kept in memory and retried");
    }
    s
}

/// The "Next rotation" line, for `/status` of one account and of several.
pub(crate) fn rotation_line(v: &View) -> String {
    if v.paused {
        return "\nNext rotation: ⏸ paused (/resume)".into();
    }
    match (v.mode, v.next_rotation) {
        (_, Some(t)) => format!("\nNext rotation: {}", when(t, v.now)),
        (Mode::Consent, None) => "\nNext rotation: by you, through the login link (consent mode)".into(),
        (Mode::Automatic, None) if v.credential_stop.is_some() => {
            "\nNext rotation: none until the credentials are fixed or you press /refresh".into()
        }
        (Mode::Automatic, None) => "\nNext rotation: being planned".into(),
    }
}

/// Next rotation, next alert, next session.
fn plan_lines(v: &View) -> String {
    let mut s = rotation_line(v);
    if let (false, Some(t)) = (v.paused, v.next_alert) {
        s.push_str(&format!("\nNext alert: {}", when(t, v.now)));
    }
    if let Some(next) = &v.next_session {
        s.push_str(&format!("\nNext session: {}", escape(next)));
    }
    s
}

/// Dhan's reachability and the static IP check.
fn dhan_lines(v: &View) -> String {
    let mut s = String::from(match v.dhan_reachable {
        Some(true) => "\nDhan: ✅ reachable",
        Some(false) => "\nDhan: ⚠️ not answering",
        None => "\nDhan: not checked yet",
    });
    match &v.ip {
        Some(Ok(ip)) if ip.orders_refused() => s.push_str(&format!("\nStatic IP: ⚠️ {}", escape(&ip.summary()))),
        Some(Ok(ip)) => s.push_str(&format!("\nStatic IP: ✅ {}", escape(&ip.summary()))),
        Some(Err(e)) => s.push_str(&format!("\nStatic IP: not known ({})", escape(e))),
        None => s.push_str("\nStatic IP: not checked yet"),
    }
    s
}

/// The `/healthz` body, and whether it is healthy (a usable token). The static IP check is a
/// field, never a failure of the token.
pub fn healthz(v: &View) -> (bool, Value) {
    let usable = v.usable();
    let token = v.token.as_ref().filter(|_| usable);
    let body = json!({
        "status": if usable { "ok" } else { "no_valid_token" },
        "token_valid": usable,
        "expires_at": token.map(|t| ist::to_ist(&t.expires_at).to_rfc3339()),
        "seconds_left": token.map(|t| (t.expires_at.with_timezone(&Utc) - v.now).num_seconds()),
        "paused": v.paused,
        "token_file_written": !v.unsaved,
        "static_ip": match &v.ip {
            Some(Ok(ip)) => json!({
                "orders_allowed": !ip.orders_refused(),
                "detected_ip": ip.detected_ip,
                "primary_ip": ip.primary_ip,
                "secondary_ip": ip.secondary_ip,
            }),
            Some(Err(e)) => json!({ "error": e }),
            None => Value::Null,
        },
    });
    (usable, body)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::lifecycle::{Suspicion, TokenSummary};
    use crate::state::CredentialStop;
    use crate::token::TokenSource;

    pub(crate) fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
    }

    /// A healthy view at 08:30 IST, the token expiring at 18:30 IST.
    pub(crate) fn view() -> View {
        View {
            now: at("2026-11-30T03:00:00Z"),
            mode: Mode::Automatic,
            client_id: "1000000001".into(),
            alert_before: Duration::from_secs(7200),
            token: Some(TokenSummary {
                expires_at: ist::to_ist(&at("2026-11-30T13:00:00Z")),
                source: Some(TokenSource::Totp),
                obtained_at: Some(ist::to_ist(&at("2026-11-29T13:00:00Z"))),
            }),
            revoked: false,
            suspect: None,
            failures: 0,
            unsaved: false,
            dhan_reachable: Some(true),
            ip: None,
            paused: false,
            last_attempt: None,
            credential_stop: None,
            next_rotation: Some(at("2026-11-30T12:30:00Z")),
            next_alert: None,
            next_session: None,
            fleet: None,
        }
    }

    #[test]
    fn status_says_what_the_trader_needs_in_ist() {
        let s = status_text(&view());
        assert!(s.contains("🟢 valid, 10h 00m left"), "{s}");
        assert!(s.contains("Expires: Mon 30 Nov 18:30 IST"), "{s}");
        assert!(s.contains("Next rotation: Mon 30 Nov 18:00 IST (in 9h 30m)"), "{s}");
        assert!(s.contains("Static IP: not checked yet"), "{s}");
    }

    #[test]
    fn a_suspicion_a_stop_and_a_revocation_are_said_plainly() {
        let mut v = view();
        v.suspect =
            Some(Suspicion { rejections: 1, first_at: v.now, last_at: v.now, message: "Invalid <Token>".into() });
        v.credential_stop =
            Some(CredentialStop { at: ist::to_ist(&v.now), message: "Login failed".into(), config_id: "x".into() });
        v.next_rotation = None;
        let s = status_text(&v);
        assert!(s.contains("🔎 Dhan rejected the token 1× (Invalid &lt;Token&gt;)"), "escaped: {s}");
        assert!(s.contains("🔐 Automatic minting stopped"), "{s}");
        assert!(s.contains("none until the credentials are fixed"), "{s}");
        v.revoked = true;
        assert!(token_line(&v).starts_with("🚫 revoked"));
        let (ok, body) = healthz(&v);
        assert!(!ok);
        assert_eq!(body["status"], "no_valid_token");
    }

    #[test]
    fn healthz_reports_the_token_and_the_static_ip_as_a_field() {
        let mut v = view();
        v.ip = Some(Ok(crate::dhan::IpStatus {
            primary_ip: Some("203.0.113.7".into()),
            detected_ip: Some("127.0.0.1".into()),
            matched: Some(false),
            orders_allowed: Some(false),
            ..crate::dhan::IpStatus::default()
        }));
        let (ok, body) = healthz(&v);
        assert!(ok, "a refused static IP is not a token failure");
        assert_eq!(body["seconds_left"], 36_000);
        assert_eq!(body["static_ip"]["orders_allowed"], false);
        assert!(start_text(&v).contains("Client: <code>1000000001</code>"));
    }
}
