//! The replies about several accounts at once: `/status` and `/start` without a label, and the
//! overall `/healthz`. One compact block per account, worst first, so the account that needs
//! the trader is the one they read first.

use serde_json::{Map, Value, json};

use super::{healthz, rotation_line, token_line, trouble_lines};
use crate::config::Mode;
use crate::lifecycle::View;
use crate::telegram::html::escape;

/// How much an account needs attention: 0 no usable token, 1 trouble (a suspicion, a
/// credential stop, failures, an unwritable file), 2 inside the alert window, 3 fine.
pub fn severity(v: &View) -> u8 {
    if !v.usable() {
        return 0;
    }
    if v.suspect.is_some() || v.credential_stop.is_some() || v.failures > 0 || v.unsaved {
        return 1;
    }
    let left = v.token.as_ref().map(|t| t.expires_at.with_timezone(&chrono::Utc) - v.now);
    let window = chrono::Duration::from_std(v.alert_before).unwrap_or_default();
    if left.is_some_and(|l| l < window) { 2 } else { 3 }
}

/// The accounts in the order to show them: worst first, then as configured.
fn worst_first(accounts: &[(String, View)]) -> Vec<&(String, View)> {
    let mut order: Vec<&(String, View)> = accounts.iter().collect();
    order.sort_by_key(|(_, v)| severity(v));
    order
}

/// One account in a few lines: its token, its next rotation, and what is wrong.
fn block(label: &str, v: &View) -> String {
    let mut s = format!("<b>{}</b> · {}", escape(label), token_line(v));
    s.push_str(&rotation_line(v));
    s.push_str(&trouble_lines(v));
    s
}

/// `/status` for several accounts.
pub fn status_many(accounts: &[(String, View)]) -> String {
    let blocks: Vec<String> = worst_first(accounts).iter().map(|(l, v)| block(l, v)).collect();
    let n = accounts.len();
    let mut s = format!("<b>{n} account{}</b>\n\n{}", if n == 1 { "" } else { "s" }, blocks.join("\n\n"));
    s.push_str("\n\nDetails of one: /status LABEL");
    s
}

/// `/start` for several accounts.
pub fn start_many(accounts: &[(String, View)]) -> String {
    let n = accounts.len();
    let mut s = format!(
        "👋 <b>dhan-keeper</b> v{} keeps {n} account{}:",
        env!("CARGO_PKG_VERSION"),
        if n == 1 { "" } else { "s" }
    );
    for (label, v) in accounts {
        let paused = if v.paused { " · ⏸ paused" } else { "" };
        s.push_str(&format!(
            "\n• <b>{}</b> (<code>{}</code>, {}): {}{paused}",
            escape(label),
            escape(&v.client_id),
            match v.mode {
                Mode::Automatic => "automatic",
                Mode::Consent => "consent",
            },
            token_line(v)
        ));
    }
    s.push_str("\n\nSend /help for commands.");
    s
}

/// The overall `/healthz`: healthy when every account has a usable token; each account's own
/// body under `accounts`.
pub fn healthz_many(accounts: &[(String, View)]) -> (bool, Value) {
    let mut all_ok = true;
    let mut each = Map::new();
    let mut failing = Vec::new();
    for (label, v) in accounts {
        let (ok, body) = healthz(v);
        if !ok {
            all_ok = false;
            failing.push(label.clone());
        }
        each.insert(label.clone(), body);
    }
    let body = json!({
        "status": if all_ok { "ok" } else { "no_valid_token" },
        "token_valid": all_ok,
        "accounts_without_valid_token": failing,
        "accounts": each,
    });
    (all_ok, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ist;
    use crate::lifecycle::TokenSummary;
    use crate::replies::tests::at;

    fn view(expires: &str) -> View {
        let mut v = crate::replies::tests::view();
        v.token = Some(TokenSummary { expires_at: ist::to_ist(&at(expires)), source: None, obtained_at: None });
        v.next_rotation = None;
        v
    }

    #[test]
    fn the_account_that_needs_the_trader_comes_first() {
        let fine = view("2026-11-30T20:00:00Z");
        let soon = view("2026-11-30T04:00:00Z");
        let mut failing = view("2026-11-30T20:00:00Z");
        failing.failures = 2;
        let dead = view("2026-11-30T02:00:00Z");
        let table = [(&fine, 3), (&soon, 2), (&failing, 1), (&dead, 0)];
        for (v, want) in table {
            assert_eq!(severity(v), want);
        }
        let accounts = vec![
            ("me".to_string(), fine),
            ("mom".to_string(), soon),
            ("dad".to_string(), failing),
            ("huf".to_string(), dead),
        ];
        let s = status_many(&accounts);
        let pos = |l: &str| s.find(&format!("<b>{l}</b>")).unwrap_or(usize::MAX);
        assert!(pos("huf") < pos("dad") && pos("dad") < pos("mom") && pos("mom") < pos("me"), "{s}");
        assert!(s.starts_with("<b>4 accounts</b>"), "{s}");
        assert!(s.contains("Failures in a row: 2"), "{s}");
        let (ok, body) = healthz_many(&accounts);
        assert!(!ok);
        assert_eq!(body["accounts_without_valid_token"], json!(["huf"]));
        assert_eq!(body["accounts"]["me"]["token_valid"], true);
        assert!(start_many(&accounts).contains("<b>mom</b> (<code>1000000001</code>, automatic): 🟡"));
    }
}
