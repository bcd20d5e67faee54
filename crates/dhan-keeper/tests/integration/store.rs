//! The token file under concurrent readers: never a partial file.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dhan_keeper::ist;
use dhan_keeper::secret::Secret;
use dhan_keeper::token::{Token, TokenSource, TokenStore};

fn token(n: usize) -> Token {
    Token {
        // Long enough that a torn write would be visible.
        access_token: Secret::new(format!("{n}-{}", "x".repeat(4096))),
        expires_at: ist::parse_naive_ist("2026-11-26T08:30:00").expect("valid"),
        client_id: Some("1000000001".into()),
        obtained_at: None,
        source: Some(TokenSource::Totp),
    }
}

#[test]
fn a_concurrent_reader_only_ever_sees_a_whole_old_or_new_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = TokenStore::new(dir.path().join("dhan_token.json"));
    store.save(&token(0)).expect("first save");
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (path, done) = (store.path().to_path_buf(), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(Ordering::Relaxed) {
                let bytes = std::fs::read(&path).expect("the file always exists");
                let v: serde_json::Value = serde_json::from_slice(&bytes).expect("always whole JSON");
                assert!(v["access_token"].as_str().expect("token").ends_with(&"x".repeat(4096)));
                reads += 1;
            }
            reads
        })
    };
    for n in 1..=300 {
        store.save(&token(n)).expect("save");
    }
    done.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("reader never saw a partial file");
    assert!(reads > 0);
    let last = store.load().expect("loads").expect("present");
    assert!(last.access_token.expose().starts_with("300-"));
    // No temp files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").filter_map(Result::ok).collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn a_failed_save_names_the_path_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The target is a non-empty directory: the final rename fails even for root.
    let target = dir.path().join("dhan_token.json");
    std::fs::create_dir(&target).expect("mkdir");
    std::fs::write(target.join("keep"), "x").expect("write");
    let store = TokenStore::new(&target);
    let err = store.save(&token(1)).expect_err("cannot replace a directory");
    assert!(err.to_string().contains("dhan_token.json"), "{err}");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["dhan_token.json".to_string()], "temp file cleaned up");
}
