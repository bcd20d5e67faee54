//! A wrapper for values that must never reach a log, an error message, `Debug` output or a chat.
//!
//! Every credential dhan-keeper holds (API secret, TOTP secret, PIN, bot token, access tokens,
//! the loopback bearer) lives in a [`Secret`]. Its `Debug` and `Display` print `[redacted]`, it has
//! no `Serialize`, and the only way to read it is the deliberately loud [`Secret::expose`], which
//! is called where a header, query or file body is built and nowhere else.

use std::fmt;

/// A string that prints as `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value. Call only where it is put on the wire or into the token file.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the wrapped value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }
}
