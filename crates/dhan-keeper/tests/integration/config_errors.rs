//! Every bad-config case names the key and the fix, exits 2, and never echoes a secret.

use std::os::unix::fs::PermissionsExt;

use dhan_keeper::config::{Config, Mode};
use serde_json::Value;

use crate::helpers::*;

/// Changes one config key.
type Edit = Box<dyn Fn(&mut serde_json::Map<String, Value>)>;

/// (what to change, text the message must contain)
fn cases() -> Vec<(Edit, &'static str)> {
    vec![
        (Box::new(|c| drop(c.remove("client_id"))), "`client_id` is missing"),
        (
            Box::new(|c| {
                c.insert("final_alert_before".into(), "3h".into());
                c.insert("alert_before".into(), "2h".into());
            }),
            "`final_alert_before` (3h) must not be longer than `alert_before` (2h)",
        ),
        (
            Box::new(|c| drop(c.insert("alert_after_failures".into(), "0".into()))),
            "`alert_after_failures` must be a whole number from 1 to 1000",
        ),
        (
            Box::new(|c| {
                c.insert("retry_min".into(), "10m".into());
                c.insert("retry_max".into(), "5m".into());
            }),
            "`retry_min` (10m) must not be longer than `retry_max` (5m)",
        ),
        (Box::new(|c| drop(c.insert("client_id".into(), "YOUR_CLIENT_ID".into()))), "still the example placeholder"),
        (
            Box::new(|c| drop(c.insert("telegram_chat_id".into(), "my chat".into()))),
            "`telegram_chat_id` must be a numeric",
        ),
        (Box::new(|c| drop(c.insert("admin_chat_id".into(), Value::Bool(true)))), "`admin_chat_id` must be a string"),
        (
            Box::new(|c| drop(c.insert("totp_secret".into(), "not base32 at all! 1890".into()))),
            "`totp_secret` is not a valid base32",
        ),
        (
            Box::new(|c| drop(c.insert("telegram_bot_token".into(), "12345".into()))),
            "`telegram_bot_token` does not look like a bot token",
        ),
        (Box::new(|c| drop(c.insert("pin".into(), "12ab56".into()))), "`pin` must be your Dhan login PIN"),
        (Box::new(|c| drop(c.insert("dhan_api_url".into(), "api.dhan.co".into()))), "`dhan_api_url` is not a URL"),
        (
            Box::new(|c| drop(c.insert("dhan_auth_url".into(), "ftp://auth.dhan.co".into()))),
            "`dhan_auth_url` must be an http(s) base URL",
        ),
        (Box::new(|c| drop(c.insert("alert_before".into(), "two hours".into()))), "`alert_before` is not a duration"),
        (Box::new(|c| drop(c.insert("refresh_before".into(), "25h".into()))), "less than 24h"),
        (Box::new(|c| drop(c.insert("market_hours".into(), "15:30-09:00".into()))), "`market_hours` must be"),
        (Box::new(|c| drop(c.insert("http_listen".into(), "0.0.0.0:8080".into()))), "must be a loopback address"),
        (Box::new(|c| drop(c.insert("http_token".into(), "short".into()))), "`http_token` must be at least 16"),
        (
            Box::new(|c| drop(c.insert("on_refresh".into(), "reload.sh --now".into()))),
            "`on_refresh` must be a command as a list",
        ),
        (Box::new(|c| drop(c.remove("totp_secret"))), "`pin` is set but `totp_secret` is missing"),
        (
            Box::new(|c| {
                for k in ["pin", "api_key", "api_secret", "totp_secret"] {
                    c.remove(k);
                }
            }),
            "no way to obtain a token",
        ),
        (Box::new(|c| drop(c.remove("telegram_chat_id"))), "`telegram_chat_id` is missing"),
    ]
}

#[tokio::test]
async fn each_bad_key_is_named_with_its_fix_and_exit_code_2() {
    let sim = sim().await;
    for (edit, expected) in cases() {
        let ws = Workspace::with(&sim, |c| edit(c));
        let run = ws.run(&["status"]).await;
        assert_eq!(run.code, 2, "expected exit 2 for {expected:?}: {run:?}");
        assert!(run.stderr.contains(expected), "expected {expected:?} in:\n{}", run.stderr);
        assert!(run.stdout.is_empty(), "{run:?}");
        assert!(!run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"), "{run:?}");
        run.assert_no_secrets();
    }
}

#[tokio::test]
async fn several_problems_are_reported_together() {
    let sim = sim().await;
    let ws = Workspace::with(&sim, |c| {
        c.insert("pin".into(), "abc".into());
        c.insert("telegram_chat_id".into(), "x".into());
    });
    let run = ws.run(&["status"]).await;
    assert!(
        run.stderr.contains("2 problems") && run.stderr.contains("`pin`") && run.stderr.contains("`telegram_chat_id`"),
        "{run:?}"
    );
}

#[tokio::test]
async fn broken_json_points_at_line_and_column() {
    let sim = sim().await;
    let ws = Workspace::new(&sim);
    ws.write_config("{\n  \"client_id\": \"1000000001\",\n  \"pin\": 123456,,\n}");
    let run = ws.run(&["status"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not valid JSON") && run.stderr.contains("line 3"), "{run:?}");
    ws.write_config("[1, 2]");
    let run = ws.run(&["status"]).await;
    assert!(run.stderr.contains("expected an object"), "{run:?}");
}

#[tokio::test]
async fn a_missing_config_file_says_where_it_looked_and_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dhan-keeper"))
        .args(["status", "--config"])
        .arg(dir.path().join("nope.json"))
        .env_remove("DHAN_KEEPER_CLIENT_ID")
        .output()
        .await
        .expect("runs");
    let run = Run::from(out);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("nope.json") && run.stderr.contains("not found"), "{run:?}");
}

#[tokio::test]
async fn unknown_keys_and_loose_permissions_warn_without_failing() {
    let sim = sim().await;
    let ws = Workspace::with(&sim, |c| {
        c.insert("telegram_chatid".into(), "1".into());
    });
    std::fs::set_permissions(ws.config_path(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let run = ws.run(&["status"]).await;
    assert_eq!(run.code, 1, "no token yet, but the config loads: {run:?}");
    assert!(run.stderr.contains("unknown key `telegram_chatid`"), "{run:?}");
    assert!(run.stderr.contains("readable by group/others") && run.stderr.contains("chmod 600"), "{run:?}");
}

#[test]
fn env_overrides_and_secret_files_layer_over_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dhan_config.json");
    write_private(&path, r#"{"client_id": "1000000001", "totp_secret": "gezd gnbv gy3t qojq", "telegram_chat_id": 5}"#);
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, "654321\n").expect("write");
    let env = |k: &str| match k {
        "DHAN_KEEPER_PIN_FILE" => Some(pin_file.display().to_string()),
        "DHAN_KEEPER_TELEGRAM_CHAT_ID" => Some("-1001234567890".to_string()),
        "DHAN_KEEPER_ON_REFRESH" => Some(r#"["/bin/echo", "new token"]"#.to_string()),
        _ => None,
    };
    let cfg = Config::load_with_env(Some(path.clone()), &env).expect("loads");
    assert_eq!(cfg.mode(), Mode::Automatic);
    assert_eq!(cfg.pin.as_ref().map(|p| p.expose()), Some("654321"), "trailing newline trimmed");
    assert_eq!(cfg.telegram_chat_id, Some(-1_001_234_567_890));
    assert_eq!(cfg.admin_chat_id, cfg.telegram_chat_id, "admin defaults to the alert chat");
    assert_eq!(cfg.on_refresh, Some(vec!["/bin/echo".to_string(), "new token".to_string()]));
    assert_eq!(cfg.token_file, dir.path().join("dhan_token.json"), "token file sits beside the config");
    assert_eq!(cfg.alert_before, std::time::Duration::from_secs(7200));
    assert_eq!(cfg.refresh_before, std::time::Duration::from_secs(1800));
    assert!(cfg.market_hours.is_some());
    assert!(!format!("{cfg:?}").contains("654321"), "Debug redacts secrets");

    // Env-only configuration, as in a container.
    let env_only = |k: &str| match k {
        "DHAN_KEEPER_CLIENT_ID" => Some("1000000001".to_string()),
        "DHAN_KEEPER_API_KEY" => Some("k".to_string()),
        "DHAN_KEEPER_API_SECRET" => Some("s".to_string()),
        _ => None,
    };
    let cfg = Config::load_with_env(Some(dir.path().join("absent.json")), &env_only).expect("env only");
    assert_eq!(cfg.mode(), Mode::Consent);
}

/// The shipped example has only real keys and their real defaults: filling in the placeholders
/// gives a config with no warnings that equals one with the optional keys left out.
#[test]
fn the_example_config_is_complete_and_loads_once_filled_in() {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../dhan_config.example.json"))
        .expect("the example config exists");
    let filled = example
        .replace("YOUR_CLIENT_ID", "1000000001")
        .replace("YOUR_TOTP_SECRET", TOTP_SECRET)
        .replace("YOUR_PIN", PIN)
        .replace("YOUR_BOT_TOKEN", BOT_TOKEN)
        .replace("YOUR_CHAT_ID", "123456789");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dhan_config.json");
    write_private(&path, &filled);
    let cfg = Config::load_with_env(Some(path), &|_| None).expect("the filled-in example loads");
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert_eq!(cfg.mode(), Mode::Automatic);
    assert_eq!((cfg.refresh_before.as_secs(), cfg.alert_before.as_secs()), (1800, 7200));
    assert_eq!((cfg.final_alert_before.as_secs(), cfg.mint_cooldown.as_secs()), (1800, 125));
    assert_eq!(cfg.alert_after_failures, 3);
}

/// A default never collides with a value the user set: one key of a related pair alone is
/// accepted and the unset one adapts to it.
#[test]
fn one_key_of_a_related_pair_alone_is_accepted_and_the_other_adapts() {
    let load = |pairs: &[(&str, &str)]| {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = serde_json::json!({"client_id": "1000000001", "pin": PIN, "totp_secret": TOTP_SECRET});
        for (k, v) in pairs {
            cfg[*k] = Value::String((*v).to_string());
        }
        let path = dir.path().join("dhan_config.json");
        write_private(&path, &cfg.to_string());
        Config::load_with_env(Some(path), &|_| None)
    };
    let c = load(&[("alert_before", "60s")]).expect("alert_before alone is accepted");
    assert_eq!((c.alert_before.as_secs(), c.final_alert_before.as_secs()), (60, 15));
    let c = load(&[("final_alert_before", "3h")]).expect("final_alert_before alone is accepted");
    assert_eq!((c.alert_before.as_secs(), c.final_alert_before.as_secs()), (12 * 3600, 3 * 3600));
    let c = load(&[("retry_min", "10m")]).expect("retry_min alone is accepted");
    assert_eq!((c.retry_min.as_secs(), c.retry_max.as_secs()), (600, 600));
    let c = load(&[("retry_max", "2s")]).expect("retry_max alone is accepted");
    assert_eq!((c.retry_min.as_secs(), c.retry_max.as_secs()), (2, 2));
    assert_eq!(load(&[]).expect("defaults").mint_cooldown.as_secs(), 125, "Dhan's 2 minutes plus a margin");
}
