//! `dhan-keeper accounts`: the accounts a config describes, one line each, without touching the
//! network. It is how a trader sees that a family config says what they meant (labels, token
//! files, source addresses) before running it.

use std::process::ExitCode;

use crate::config::Accounts;

/// Prints one line per account and the config's warnings. Exit 0.
pub fn accounts(accounts: &Accounts) -> ExitCode {
    let origin = accounts.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "environment only".into());
    let n = accounts.list.len();
    super::out(&format!("{origin}: {n} account{}", if n == 1 { "" } else { "s" }));
    for a in &accounts.list {
        let c = &a.config;
        let mode = match c.mode() {
            crate::config::Mode::Automatic => "automatic",
            crate::config::Mode::Consent => "consent",
        };
        let mut line = format!("{:<16}  client {}  {mode}  token {}", a.label, c.client_id, c.token_file.display());
        if let Some(ip) = c.bind_address {
            line.push_str(&format!("  from {ip}"));
        }
        if let Some(chat) = a.alert_chat_id {
            line.push_str(&format!("  alerts also to chat {chat}"));
        }
        super::out(&line);
    }
    for w in &accounts.warnings {
        super::out(&format!("warning: {w}"));
    }
    ExitCode::SUCCESS
}
