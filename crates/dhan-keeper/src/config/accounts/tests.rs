//! Tests for the parent module.

use super::*;

#[test]
fn labels_are_short_lowercase_words() {
    for good in ["mom", "huf-2", "a", "asha_trader_0001", "0"] {
        assert!(Label::parse(good).is_ok(), "{good}");
    }
    for bad in ["", "Mom", "dad's", "with space", "seventeen-chars-x", "ठीक"] {
        let e = Label::parse(bad).expect_err(bad);
        assert!(e.contains("`label` must be 1 to 16 characters"), "{e}");
    }
}

#[test]
fn a_client_id_makes_a_valid_label() {
    let table = [("1000000001", "1000000001"), ("AB12cd", "ab12cd"), ("12345678901234567890", "1234567890123456")];
    for (id, want) in table {
        let l = Label::from_client_id(id);
        assert_eq!(l.as_str(), want);
        assert!(Label::parse(l.as_str()).is_ok());
    }
}

fn family(entries: serde_json::Value) -> Accounts {
    let map = match serde_json::json!({"accounts": entries}) {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let layers = Layers { map, path: None, base_dir: PathBuf::from("."), origin: "test".into(), warnings: Vec::new() };
    match from_layers(layers) {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    }
}

fn automatic(label: &str, client_id: &str) -> serde_json::Value {
    serde_json::json!({"label": label, "client_id": client_id, "pin": "1234",
                       "totp_secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"})
}

#[test]
fn a_command_acts_on_the_named_account_or_the_only_one() {
    let one = family(serde_json::json!([automatic("mom", "1000000002")]));
    let three = family(serde_json::json!([
        automatic("me", "1000000001"),
        automatic("mom", "1000000002"),
        automatic("dad", "1000000002")
    ]));
    let table: [(&Accounts, Option<&str>, Result<&str, &str>); 5] = [
        (&one, None, Ok("mom")),
        (&one, Some("mom"), Ok("mom")),
        (&three, Some("dad"), Ok("dad")),
        (&three, None, Err("there are 3 accounts (me, mom, dad); say which one")),
        (&three, Some("huf"), Err("no account is labelled \"huf\"; the accounts are: me, mom, dad")),
    ];
    for (accounts, label, want) in table {
        let got = accounts.select(label).map(|a| a.label.as_str());
        assert_eq!(got, want.map_err(str::to_string), "{label:?}");
    }
    let labels: Vec<&str> = three.by_client_id("1000000002").iter().map(|a| a.label.as_str()).collect();
    assert_eq!(labels, ["mom", "dad"]);
    assert!(three.by_client_id("1000000009").is_empty());
}

#[test]
fn a_key_twice_in_one_account_is_found() {
    let table: [(&str, Vec<(usize, String)>); 6] = [
        (
            r#"{"accounts": [{"label": "a", "pin": "1"}, {"label": "b", "pin": "1", "pin": "2"}]}"#,
            vec![(1, "pin".into())],
        ),
        (
            r#"{"pin": "1", "accounts": [{"label": "a", "label": "b"}, 3, null, "x", [1], {"a": 1, "a": 2}]}"#,
            vec![(0, "label".into()), (5, "a".into())],
        ),
        (r#"{"accounts": [{"label": "a"}, {"label": "b", "label": "c"}], "z": {"y": 1}}"#, vec![(1, "label".into())]),
        (r#"{"accounts": "not a list"}"#, vec![]),
        (r#"{"client_id": "1", "pin": "2"}"#, vec![]),
        ("not json", vec![]),
    ];
    for (text, want) in table {
        assert_eq!(duplicate_keys_in_entries(text), want, "{text}");
    }
}

#[test]
fn a_message_goes_with_the_account_or_once_with_the_shared_keys() {
    let shared_only = vec!["http_listen".to_string(), "telegram_bot_token".to_string()];
    let (mut own, mut shared) = (Vec::new(), Vec::new());
    for msg in [
        "`pin` must be your Dhan login PIN",
        "`dhan_api_url` is not a URL",
        "`http_listen` must be a loopback address",
        "`http_listen` must be a loopback address",
        "no way to obtain a token",
        "`client_id` is missing",
        "`telegram_bot_token` is set but `telegram_chat_id` is missing",
    ] {
        sort_out(msg.into(), &shared_only, &mut own, &mut shared);
    }
    assert_eq!(
        own,
        [
            "`pin` must be your Dhan login PIN",
            "`dhan_api_url` is not a URL",
            "no way to obtain a token",
            "`client_id` is missing"
        ]
    );
    assert_eq!(
        shared,
        ["`http_listen` must be a loopback address", "`telegram_bot_token` is set but `telegram_chat_id` is missing"]
    );
}
