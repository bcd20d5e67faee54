//! Just enough of Telegram's HTML and MarkdownV2 parsers to refuse what the real server refuses
//! with "can't parse entities", and to return the plain text it would store.

/// The tags the Bot API accepts in HTML mode; anything else is refused like the server does.
const HTML_TAGS: [&str; 16] = [
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "a",
    "code",
    "pre",
    "tg-spoiler",
    "span",
    "blockquote",
    "tg-emoji",
];

/// Parses Bot API HTML: supported tags must nest and close; `<`, `>` and `&` in text must be
/// escaped (`&lt;` `&gt;` `&amp;` `&quot;`).
pub fn parse_html(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut stack: Vec<String> = Vec::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        rest = match c {
            '<' => html_tag(s, rest, &mut stack)?,
            '&' => html_entity(s, rest, &mut out)?,
            _ => {
                out.push(c);
                &rest[c.len_utf8()..]
            }
        };
    }
    match stack.pop() {
        Some(open) => Err(format!("Can't find end tag corresponding to start tag \"{open}\"")),
        None => Ok(out),
    }
}

/// Handles the tag at the start of `rest` (a suffix of `s`, so offsets match the server's),
/// opening or closing it on `stack`; returns the text after the tag.
fn html_tag<'a>(s: &str, rest: &'a str, stack: &mut Vec<String>) -> Result<&'a str, String> {
    let end = rest.find('>').ok_or_else(|| format!("Unclosed start tag at byte offset {}", s.len() - rest.len()))?;
    let inner = &rest[1..end];
    if let Some(name) = inner.strip_prefix('/') {
        let name = name.trim().to_ascii_lowercase();
        match stack.pop() {
            Some(open) if open == name => {}
            Some(open) => return Err(format!("Can't find end tag corresponding to start tag \"{open}\"")),
            None => return Err(format!("Unexpected end tag at byte offset {}", s.len() - rest.len())),
        }
    } else {
        let name = inner.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        if !HTML_TAGS.contains(&name.as_str()) {
            return Err(format!("Unsupported start tag \"{name}\" at byte offset {}", s.len() - rest.len()));
        }
        stack.push(name);
    }
    Ok(&rest[end + 1..])
}

/// Decodes the entity at the start of `rest` (a suffix of `s`) into `out`; only the four the
/// server knows are accepted. Returns the text after the entity.
fn html_entity<'a>(s: &str, rest: &'a str, out: &mut String) -> Result<&'a str, String> {
    let end = rest.find(';').filter(|e| *e <= 8);
    let entity = end.map(|e| &rest[..=e]);
    let decoded = match entity {
        Some("&lt;") => '<',
        Some("&gt;") => '>',
        Some("&amp;") => '&',
        Some("&quot;") => '"',
        _ => return Err(format!("Unsupported HTML entity at byte offset {}", s.len() - rest.len())),
    };
    out.push(decoded);
    Ok(&rest[end.unwrap_or(0) + 1..])
}

/// Parses MarkdownV2: `_*[]()~`>#+-=|{}.!` must be escaped with `\` outside entities, and entity
/// markers (`*`, `_`, `__`, `~`, `||`, `` ` ``) must close.
pub fn parse_markdown_v2(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut open: Vec<&str> = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e)) => out.push(e),
                None => {
                    return Err(format!(
                        "Character '\\' is reserved and must be escaped with the preceding '\\' at byte offset {i}"
                    ));
                }
            },
            '*' | '~' | '`' => toggle(
                &mut open,
                if c == '*' {
                    "*"
                } else if c == '~' {
                    "~"
                } else {
                    "`"
                },
            ),
            '_' => {
                if chars.peek().is_some_and(|(_, n)| *n == '_') {
                    chars.next();
                    toggle(&mut open, "__");
                } else {
                    toggle(&mut open, "_");
                }
            }
            '|' if chars.peek().is_some_and(|(_, n)| *n == '|') => {
                chars.next();
                toggle(&mut open, "||");
            }
            '[' | ']' | '(' | ')' | '>' | '#' | '+' | '-' | '=' | '|' | '{' | '}' | '.' | '!' => {
                return Err(format!("Character '{c}' is reserved and must be escaped with the preceding '\\'"));
            }
            _ => out.push(c),
        }
    }
    match open.last() {
        Some(m) => Err(format!("Can't find end of {} entity", entity_name(m))),
        None => Ok(out),
    }
}

fn toggle(open: &mut Vec<&'static str>, marker: &'static str) {
    if open.last() == Some(&marker) {
        open.pop();
    } else {
        open.push(marker);
    }
}

fn entity_name(marker: &str) -> &'static str {
    match marker {
        "*" => "Bold",
        "_" => "Italic",
        "__" => "Underline",
        "~" => "Strikethrough",
        "||" => "Spoiler",
        _ => "Code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_checked_like_the_server() {
        assert_eq!(
            parse_html("<b>Token</b> expires &lt;2h&gt; &amp; more").as_deref(),
            Ok("Token expires <2h> & more")
        );
        assert!(parse_html("<b>open").expect_err("unclosed").contains("start tag \"b\""));
        assert!(parse_html("a < b").is_err());
        assert!(parse_html("R&D").is_err());
        assert!(parse_html("<script>x</script>").is_err());
    }

    #[test]
    fn markdown_v2_reserved_characters_must_be_escaped() {
        assert_eq!(parse_markdown_v2("*Token* expires in 2h\\.").as_deref(), Ok("Token expires in 2h."));
        assert!(parse_markdown_v2("expires at 08.30").expect_err("dot").contains("'.' is reserved"));
        assert!(parse_markdown_v2("*bold").expect_err("open").contains("Bold"));
    }
}
