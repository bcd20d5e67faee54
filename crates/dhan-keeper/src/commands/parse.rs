//! Commands as the bot understands them: the list registered with Telegram, parsing, `/help`.

use crate::telegram::html::escape;

/// The command list registered with `setMyCommands`, also the body of `/help`.
pub const COMMANDS: &[(&str, &str)] = &[
    ("start", "Bot and token overview"),
    ("status", "Token validity, expiry (IST), next rotation and alert"),
    ("refresh", "Get a new token now (admin)"),
    ("account", "Funds, holdings and positions"),
    ("calendar", "Next five sessions and the next holiday (IST)"),
    ("pause", "Stop automatic rotation and alerts (admin)"),
    ("resume", "Restart automatic rotation and alerts (admin)"),
    ("help", "This list"),
];

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/start`.
    Start,
    /// `/status`.
    Status,
    /// `/refresh`.
    Refresh,
    /// `/account`.
    Account,
    /// `/help`.
    Help,
    /// `/pause`.
    Pause,
    /// `/resume`.
    Resume,
    /// `/calendar`.
    Calendar,
    /// Anything else that starts with `/` (its name, at most 32 characters).
    Unknown(String),
}

impl Command {
    /// Parses `/cmd`, `/cmd@botname` (the name compared without case) and ignores commands
    /// addressed to another bot (`None`). Text that is not a command is `None` as well.
    pub fn parse(text: &str, bot_username: &str) -> Option<Command> {
        let word = text.split_whitespace().next()?;
        let body = word.strip_prefix('/')?;
        let (name, target) = match body.split_once('@') {
            Some((n, t)) => (n, Some(t)),
            None => (body, None),
        };
        if target.is_some_and(|t| !t.eq_ignore_ascii_case(bot_username)) {
            return None;
        }
        Some(match name.to_ascii_lowercase().as_str() {
            "start" => Command::Start,
            "status" => Command::Status,
            "refresh" => Command::Refresh,
            "account" => Command::Account,
            "help" => Command::Help,
            "pause" => Command::Pause,
            "resume" => Command::Resume,
            "calendar" => Command::Calendar,
            // Kept short: it is echoed in the reply and logged for strangers.
            other => Command::Unknown(other.chars().take(32).collect()),
        })
    }

    pub(crate) fn admin_only(&self) -> bool {
        matches!(self, Command::Refresh | Command::Pause | Command::Resume)
    }
}

/// The word after a command (`/refresh mom` → `mom`): an account's label. At most 32
/// characters are kept; it is echoed in replies.
pub fn argument(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.next()?.strip_prefix('/')?;
    words.find(|w| !w.eq_ignore_ascii_case(FORCE)).map(|w| w.chars().take(32).collect())
}

/// The word that makes `/refresh` override a fleet lease this host cannot confirm.
pub const FORCE: &str = "force";

/// Whether a command says `force` (`/refresh force`, `/refresh mom force`).
pub fn forced(text: &str) -> bool {
    text.split_whitespace().skip(1).any(|w| w.eq_ignore_ascii_case(FORCE))
}

/// The `/help` text.
pub fn help_text() -> String {
    let mut s = "<b>Commands</b>".to_string();
    for (c, d) in COMMANDS {
        s.push_str(&format!("\n/{c} — {}", escape(d)));
    }
    s.push_str(
        "\n\nIn the admin chat you can also paste the address you land on after the Dhan login, a tokenId, or an \
         access token.",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_and_without_the_bot_name() {
        assert_eq!(Command::parse("/status", "DhanBot"), Some(Command::Status));
        assert_eq!(Command::parse("/status@DhanBot", "DhanBot"), Some(Command::Status));
        assert_eq!(Command::parse("/Status@dhanbot now", "DhanBot"), Some(Command::Status));
        assert_eq!(Command::parse("/status@OtherBot", "DhanBot"), None);
        assert_eq!(Command::parse("/frobnicate", "DhanBot"), Some(Command::Unknown("frobnicate".into())));
        assert_eq!(Command::parse("hello", "DhanBot"), None);
        assert_eq!(Command::parse("", "DhanBot"), None);
    }

    #[test]
    fn the_word_after_a_command_is_its_account() {
        assert_eq!(argument("/refresh mom"), Some("mom".into()));
        assert_eq!(argument("/status@DhanBot  huf-2 extra"), Some("huf-2".into()));
        assert_eq!(argument("/status"), None);
        assert_eq!(argument("mom"), None);
        assert_eq!(argument("/refresh force mom"), Some("mom".into()));
        assert!(forced("/refresh mom FORCE") && !forced("/refresh mom") && !forced("force"));
    }

    #[test]
    fn help_lists_every_command() {
        let h = help_text();
        for (c, _) in COMMANDS {
            assert!(h.contains(&format!("/{c} ")), "{c} missing from help");
        }
    }
}
