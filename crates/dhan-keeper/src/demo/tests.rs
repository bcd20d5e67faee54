//! Tests for the parent module.

use super::interactive::find_button;

#[test]
fn a_button_is_found_on_the_newest_message_that_has_it() {
    let sent = vec![
        serde_json::json!({"message_id": 1, "reply_markup": {"inline_keyboard": [[{"text": "🔄 Refresh now", "callback_data": "refresh"}]]}}),
        serde_json::json!({"message_id": 2, "text": "no buttons"}),
        serde_json::json!({"message_id": 3, "reply_markup": {"inline_keyboard": [[{"text": "Open login", "url": "http://x"}, {"text": "🔄 Refresh now", "callback_data": "refresh:2"}]]}}),
    ];
    assert_eq!(find_button(&sent, "refresh"), Some((3, "refresh:2".to_string())));
    assert_eq!(find_button(&sent, "open login"), None, "a URL button cannot be tapped from here");
    assert_eq!(find_button(&sent, "pause"), None);
}
