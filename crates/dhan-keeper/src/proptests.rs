//! Property tests for everything that parses input from outside: pasted text, commands, config
//! files, Dhan replies, token files, Telegram updates, and the HTML we send. The property is
//! always at least "no panic, no hang"; where there is more to say (round trips, limits) it is
//! said. Case counts are raised above proptest's default for the parsers users can reach.

use proptest::prelude::*;

use crate::commands::Command;
use crate::config::Config;
use crate::dhan::{FundLimit, Holding, Position};
use crate::paste::{self, Paste};
use crate::telegram::BotClient;
use crate::telegram::html;

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
}

/// Any JSON value, a few levels deep.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        ".{0,40}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn any_pasted_text_is_classified_without_panicking(text in "\\PC{0,300}") {
        let _ = paste::classify(&text);
    }

    #[test]
    fn a_callback_url_yields_its_token_id(
        id in "[A-Za-z0-9_-]{15,60}[0-9]",
        key in prop::sample::select(vec!["tokenId", "token_id", "tokenid", "TOKENID"]),
        host in "[a-z]{1,12}\\.(com|in|dev)",
        noise in "[a-z]{0,8}",
    ) {
        let url = format!("https://{host}/cb/?state={noise}&{key}={id}");
        prop_assert_eq!(paste::classify(&url), Paste::TokenId(id));
    }

    #[test]
    fn any_message_text_parses_as_a_command_or_not_without_panicking(text in "\\PC{0,200}", bot in "[A-Za-z_]{1,20}") {
        let parsed = Command::parse(&text, &bot);
        if !text.trim_start().starts_with('/') {
            prop_assert!(parsed.is_none());
        }
    }

    #[test]
    fn commands_addressed_to_the_bot_are_ours_whatever_the_case(bot in "[A-Za-z_]{1,20}", upper in any::<bool>()) {
        let name = if upper { bot.to_uppercase() } else { bot.to_lowercase() };
        prop_assert_eq!(Command::parse(&format!("/status@{name}"), &bot), Some(Command::Status));
    }

    #[test]
    fn escaped_text_reads_back_as_written(text in "\\PC{0,300}") {
        prop_assert_eq!(html::to_plain(&html::escape(&text)), text);
    }

    #[test]
    fn long_text_splits_under_the_limit_and_loses_nothing(lines in prop::collection::vec("[^\n]{0,120}", 0..200), max in 120usize..5000) {
        let text = lines.join("\n");
        let parts = html::split(&text, max);
        prop_assert!(parts.iter().all(|p| p.chars().count() <= max));
        prop_assert_eq!(parts.join("\n"), text);
    }

    #[test]
    fn any_dhan_error_body_is_classified(status in 100u16..600, body in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = crate::dhan::error::classify_api_error(status, &body);
        let _ = crate::dhan::error::api_error(status, &body);
    }

    #[test]
    fn any_auth_message_is_classified(message in "\\PC{0,300}") {
        let e = crate::dhan::error::classify_mint_message(&message);
        prop_assert!(e.to_string().chars().count() < 600, "messages stay short");
    }

    #[test]
    fn any_string_is_safe_to_decode_as_a_jwt(token in "[A-Za-z0-9_.=-]{0,300}") {
        let _ = crate::dhan::jwt::decode(&token);
    }

    #[test]
    fn any_token_file_bytes_are_read_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = crate::token::parse_file(&bytes);
    }
}

proptest! {
    #![proptest_config(cases(1500))]

    #[test]
    fn any_json_is_safe_as_a_dhan_account_reply(v in json()) {
        let _ = serde_json::from_value::<FundLimit>(v.clone());
        let _ = serde_json::from_value::<Vec<Holding>>(v.clone());
        let _ = serde_json::from_value::<Vec<Position>>(v);
    }

    #[test]
    fn any_json_is_safe_as_a_telegram_update(v in json(), id in any::<i64>()) {
        let mut update = v;
        if let Some(o) = update.as_object_mut() {
            o.insert("update_id".into(), serde_json::json!(id));
        }
        let _ = BotClient::decode(update);
    }

    #[test]
    fn a_saved_token_reads_back_the_same(secs in 0i64..4_000_000_000, token in "[A-Za-z0-9._-]{1,200}", client in "[0-9]{1,12}") {
        let at = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
        let t = crate::token::Token {
            access_token: crate::secret::Secret::new(token.clone()),
            expires_at: crate::ist::to_ist(&at),
            client_id: Some(client.clone()),
            obtained_at: None,
            source: Some(crate::token::TokenSource::Manual),
        };
        let back = crate::token::parse_file(crate::token::render_file(&t).as_bytes()).map_err(TestCaseError::fail)?;
        prop_assert_eq!(back.access_token.expose(), token.as_str());
        prop_assert_eq!(back.expires_at, t.expires_at);
        prop_assert_eq!(back.client_id, Some(client));
    }
}

proptest! {
    #![proptest_config(cases(400))]

    /// The whole loader (JSON parse + validation) on hostile files: an error that names the
    /// problem, or a config; never a panic, and never a secret in the message.
    #[test]
    fn any_config_file_loads_or_is_refused_with_a_message(
        entries in prop::collection::btree_map(
            prop::sample::select(crate::config::KNOWN_KEYS.to_vec()).prop_map(str::to_string),
            json(),
            0..12,
        ),
        raw in prop::option::of("\\PC{0,200}"),
    ) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let path = dir.path().join("dhan_config.json");
        let text = raw.unwrap_or_else(|| serde_json::Value::Object(entries.into_iter().collect()).to_string());
        std::fs::write(&path, &text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        match Config::load_with_env(Some(path), &|_| None) {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
