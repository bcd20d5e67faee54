//! Telegram HTML: escaping, and splitting long text under the 4096-character limit.
//!
//! Every message goes out with `parse_mode: HTML`, and every piece of text that is not our own
//! markup passes through [`escape`], so no server reply or user input can make a message fail
//! with "can't parse entities".

/// Telegram's limit on a message's text, in characters after entity parsing.
pub const MAX_MESSAGE: usize = 4096;

/// Escapes `<`, `>`, `&` (and `"` for attribute values), the only characters HTML mode cares about.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The text a reader would see: tags dropped and entities decoded, for the plain-text fallback.
pub fn to_plain(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
}

/// Splits `text` into messages of at most `max` characters, at line breaks where possible and
/// never inside a line's markup (our lines each close their own tags).
pub fn split(text: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current: Option<String> = None;
    let mut current_len = 0;
    for line in text.split('\n') {
        let line_len = line.chars().count();
        if current.is_some() && current_len + 1 + line_len > max {
            parts.extend(current.take());
        }
        if line_len > max {
            // A single over-long line: cut it by characters (plain text only reaches here).
            let chars: Vec<char> = line.chars().collect();
            parts.extend(chars.chunks(max.max(1)).map(|c| c.iter().collect::<String>()));
            continue;
        }
        match &mut current {
            Some(c) => {
                c.push('\n');
                c.push_str(line);
                current_len += 1 + line_len;
            }
            None => {
                current = Some(line.to_string());
                current_len = line_len;
            }
        }
    }
    parts.extend(current);
    if parts.is_empty() {
        parts.push(String::new());
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_round_trips_to_plain() {
        let nasty = r#"<b>P&L</b> "quoted" a<b"#;
        assert_eq!(escape(nasty), "&lt;b&gt;P&amp;L&lt;/b&gt; &quot;quoted&quot; a&lt;b");
        assert_eq!(to_plain(&format!("<b>{}</b>", escape(nasty))), nasty);
    }

    #[test]
    fn splits_at_lines_under_the_limit() {
        let text = (0..500).map(|i| format!("line {i:04} of the holdings list")).collect::<Vec<_>>().join("\n");
        let parts = split(&text, MAX_MESSAGE);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_MESSAGE));
        assert_eq!(parts.join("\n"), text, "nothing lost or reordered");
        assert_eq!(split("", 10), vec![String::new()]);
        assert_eq!(split(&"x".repeat(25), 10).len(), 3);
    }
}
