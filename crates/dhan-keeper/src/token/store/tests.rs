//! Tests for the parent module.

use super::*;

fn sample() -> Token {
    Token {
        access_token: Secret::new("eyJ.sample.token"),
        expires_at: ist::parse_naive_ist("2026-11-26T08:30:00").expect("valid"),
        client_id: Some("1000000001".into()),
        obtained_at: DateTime::parse_from_rfc3339("2026-11-25T08:30:00+05:30").ok(),
        source: Some(TokenSource::Totp),
    }
}

#[test]
fn file_keeps_the_prototype_keys_and_adds_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = TokenStore::new(dir.path().join("dhan_token.json"));
    store.save(&sample()).expect("saves");
    let v: serde_json::Value = serde_json::from_slice(&fs::read(store.path()).expect("reads")).expect("json");
    assert_eq!(v["access_token"], "eyJ.sample.token");
    assert_eq!(v["expiry_time"], "2026-11-26T08:30:00");
    assert_eq!(v["expires_at"], "2026-11-26T08:30:00+05:30");
    assert_eq!(v["source"], "totp");
    assert_eq!(v["obtained_at"], "2026-11-25T08:30:00+05:30");
    let back = store.load().expect("loads").expect("present");
    assert_eq!(back.expires_at, sample().expires_at);
    assert_eq!(back.access_token, sample().access_token);
}

#[test]
fn a_prototype_file_is_read_with_its_naive_time_as_ist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = TokenStore::new(dir.path().join("dhan_token.json"));
    fs::write(store.path(), r#"{"access_token": "abc", "expiry_time": "2026-11-26T08:30:00"}"#).expect("write");
    let t = store.load().expect("loads").expect("present");
    assert_eq!(t.expires_at.to_rfc3339(), "2026-11-26T08:30:00+05:30");
    assert_eq!(t.source, None);
}

#[test]
fn missing_is_none_and_corrupt_is_named_then_set_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = TokenStore::new(dir.path().join("dhan_token.json"));
    assert!(store.load().expect("ok").is_none());
    for junk in
        ["", "{", "{\"access_tok", "[]", r#"{"access_token": null}"#, r#"{"access_token":"x","expiry_time":"soon"}"#]
    {
        fs::write(store.path(), junk).expect("write");
        match store.load() {
            Err(StoreError::Corrupt { path, .. }) => assert_eq!(path, store.path()),
            other => panic!("{junk:?} gave {other:?}"),
        }
    }
    let now = DateTime::parse_from_rfc3339("2026-11-25T10:15:00+05:30").expect("valid").with_timezone(&Utc);
    let aside = store.set_aside(now).expect("renames");
    assert!(aside.to_string_lossy().ends_with("dhan_token.json.corrupt-20261125T101500"));
    assert!(store.load().expect("ok").is_none());
}

#[test]
fn other_files_are_refused_not_set_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = TokenStore::new(dir.path().join("dhan_token.json"));
    for other in [r#"{"client_id": "1000000001", "pin": "123456"}"#, "root:x:0:0:root:/root:/bin/bash\n"] {
        fs::write(store.path(), other).expect("write");
        match store.load() {
            Err(e @ StoreError::Foreign { .. }) => assert!(e.to_string().contains("will not overwrite"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn the_configured_mode_is_applied_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = TokenStore::new(dir.path().join("dhan_token.json"));
    store.access = Access { mode: 0o640, group: None };
    store.save(&sample()).expect("saves");
    let mode = fs::metadata(store.path()).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert_eq!(store.access_problem(), None);
    store.access.mode = 0o600;
    assert!(store.access_problem().is_some_and(|p| p.contains("0640")));
}

#[test]
fn a_newer_temp_is_promoted_and_an_older_one_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = TokenStore::new(dir.path().join("dhan_token.json"));
    store.save(&sample()).expect("saves");
    let now = DateTime::parse_from_rfc3339("2026-11-25T10:15:00+05:30").expect("valid").with_timezone(&Utc);
    let mut newer = sample();
    newer.access_token = Secret::new("eyJ.newer.token");
    newer.expires_at = ist::parse_naive_ist("2026-11-26T10:15:00").expect("valid");
    fs::write(dir.path().join(".dhan_token.json.tmp-1-00000001"), render(&newer)).expect("write");
    let mut older = sample();
    older.expires_at = ist::parse_naive_ist("2026-11-26T07:00:00").expect("valid");
    fs::write(dir.path().join(".dhan_token.json.tmp-1-00000002"), render(&older)).expect("write");
    assert_eq!(recover_temps(&store, now), (true, 1));
    assert_eq!(store.load().expect("ok").expect("some").access_token, newer.access_token);
    fs::write(dir.path().join(".dhan_token.json.tmp-1-00000003"), render(&older)).expect("write");
    assert_eq!(recover_temps(&store, now), (false, 1));
    assert_eq!(store.load().expect("ok").expect("some").access_token, newer.access_token);
}
