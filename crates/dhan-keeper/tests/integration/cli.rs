//! The real `dhan-keeper` binary against the simulator.

use std::os::unix::fs::PermissionsExt;

use dhan_keeper::token::InstanceLock;
use dhan_sim::Fault;

use crate::helpers::*;

#[tokio::test]
async fn refresh_mints_a_token_into_a_private_prototype_compatible_file() {
    let sim = sim().await;
    let ws = Workspace::new(&sim);
    let run = ws.run(&["refresh"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("New token saved"), "{run:?}");
    run.assert_no_secrets();

    let mode = std::fs::metadata(ws.token_path()).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let file = ws.token_json();
    let token = file["access_token"].as_str().expect("access_token").to_string();
    assert_eq!(Some(token.clone()), sim.active_token());
    // The prototype's naive IST wall time, and the same instant with its offset.
    let naive = file["expiry_time"].as_str().expect("expiry_time");
    assert_eq!(naive.len(), 19, "{naive}");
    assert_eq!(file["expires_at"].as_str().expect("expires_at"), format!("{naive}+05:30"));
    assert_eq!(file["source"], "totp");
    assert_eq!(file["client_id"], "1000000001");
    assert!(!run.all().contains(&token), "refresh must not print the token");

    let status = ws.run(&["status", "--json"]).await;
    assert_eq!(status.code, 0, "{status:?}");
    let v: serde_json::Value = serde_json::from_str(&status.stdout).expect("JSON");
    assert_eq!(v["state"], "valid");
    assert!(v["seconds_left"].as_i64().expect("seconds") > 23 * 3600);
    assert!(!status.all().contains(&token));
    status.assert_no_secrets();

    let printed = ws.run(&["token"]).await;
    assert_eq!((printed.code, printed.stdout.trim()), (0, token.as_str()));
}

#[tokio::test]
async fn a_second_refresh_inside_two_minutes_says_how_long_to_wait() {
    let sim = sim().await;
    let ws = Workspace::new(&sim);
    assert_eq!(ws.run(&["refresh"]).await.code, 0);
    let before = ws.token_json();
    let again = ws.run(&["refresh"]).await;
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("the next one can be minted at"), "{again:?}");
    assert_eq!(sim.mints(), 1, "no call was made that Dhan would refuse");
    assert_eq!(ws.token_json(), before, "the saved token is untouched");
}

#[tokio::test]
async fn refresh_with_a_wrong_pin_fails_clearly_and_writes_nothing() {
    let sim = sim().await;
    let ws = Workspace::with(&sim, |c| {
        c.insert("pin".into(), "111111".into());
    });
    let run = ws.run(&["refresh"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("refused the credentials"), "{run:?}");
    assert!(!run.stderr.contains("111111"), "the PIN is not echoed: {run:?}");
    assert!(!ws.token_path().exists());
}

#[tokio::test]
async fn refresh_is_refused_while_another_process_holds_the_lock() {
    let sim = sim().await;
    let ws = Workspace::new(&sim);
    let _held = InstanceLock::acquire(&ws.dir.path().join("dhan_token.json.lock"), "run").expect("lock");
    let run = ws.run(&["refresh"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("another dhan-keeper holds the lock"), "{run:?}");
    assert!(run.stderr.contains(&format!("pid {}", std::process::id())), "names the holder: {run:?}");
    assert_eq!(sim.mints(), 0);
}

#[tokio::test]
async fn a_corrupt_token_file_is_set_aside_and_replaced_on_refresh() {
    let sim = sim().await;
    let ws = Workspace::new(&sim);
    write_private(&ws.token_path(), "{\"access_token\": \"half");
    let status = ws.run(&["status"]).await;
    assert_eq!(status.code, 1);
    assert!(status.stdout.contains("corrupt") && status.stdout.contains("dhan_token.json"), "{status:?}");
    let run = ws.run(&["refresh"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("set the corrupt token file aside"), "{run:?}");
    let kept: Vec<_> = std::fs::read_dir(ws.dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "the corrupt file is kept for inspection");
}

#[tokio::test]
async fn token_and_status_explain_a_missing_or_expired_token() {
    let sim = sim().await;
    let ws = Workspace::new(&sim);
    let none = ws.run(&["token"]).await;
    assert_eq!(none.code, 1);
    assert!(none.stderr.contains("no token") && none.stdout.is_empty(), "{none:?}");
    write_private(&ws.token_path(), r#"{"access_token": "old-token-value", "expiry_time": "2020-01-01T09:00:00"}"#);
    let expired = ws.run(&["token"]).await;
    assert_eq!(expired.code, 1);
    assert!(expired.stderr.contains("expired") && !expired.all().contains("old-token-value"), "{expired:?}");
    let status = ws.run(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&status.stdout).expect("JSON");
    assert_eq!(v["state"], "expired");
    assert_eq!(v["expires_at"], "2020-01-01T09:00:00+05:30", "prototype naive time read as IST");
}

#[tokio::test]
async fn check_passes_against_a_healthy_dhan_and_validates_the_saved_token() {
    let sim = sim().await;
    let ws = Workspace::new(&sim);
    assert_eq!(ws.run(&["refresh"]).await.code, 0);
    let run = ws.run(&["check"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("Clock") && run.stdout.contains("accepted by Dhan"), "{run:?}");
    run.assert_no_secrets();
}

#[tokio::test]
async fn check_reports_a_clock_40_seconds_off() {
    let sim = sim().await;
    sim.set_clock_offset(chrono::Duration::seconds(40));
    let ws = Workspace::new(&sim);
    let run = ws.run(&["check"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let line = run.stdout.lines().find(|l| l.contains("Clock")).expect("clock line");
    assert!(line.contains("behind Dhan") && line.contains("TOTP codes will be refused"), "{line}");
    assert!(line.contains("39.") || line.contains("40.") || line.contains("41."), "{line}");
}

#[tokio::test]
async fn check_fails_when_dhan_is_unreachable() {
    let sim = sim().await;
    let ws = Workspace::new(&sim);
    sim.stop();
    let run = ws.run(&["check"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("cannot reach Dhan"), "{run:?}");
}

#[tokio::test]
async fn totp_prints_the_code_dhan_expects() {
    let sim = sim().await;
    let ws = Workspace::new(&sim);
    // The window may turn while the binary runs: its code must be the one before or after.
    let (before, _) = sim.totp_now().expect("code");
    let run = ws.run(&["totp"]).await;
    let (after, _) = sim.totp_now().expect("code");
    assert_eq!(run.code, 0);
    let printed = run.stdout.split_whitespace().next().unwrap_or_default();
    assert!(printed == before || printed == after, "{run:?} vs {before}/{after}");
}

#[tokio::test]
async fn nothing_secret_reaches_output_even_at_trace_level() {
    let sim = sim().await;
    let ws = Workspace::new(&sim);
    let trace = [("RUST_LOG", "trace")];
    let mut runs = vec![ws.run_env(&["refresh"], &trace).await];
    assert!(runs[0].stderr.contains("TRACE"), "trace logs were produced: {:?}", runs[0]);
    let token = ws.token_json()["access_token"].as_str().expect("token").to_string();
    sim.inject("profile", Fault::Drop, 1);
    for args in [&["check"][..], &["status"], &["status", "--json"], &["check"]] {
        runs.push(ws.run_env(args, &trace).await);
    }
    for run in &runs {
        run.assert_no_secrets();
        assert!(!run.all().contains(&token), "access token leaked: {run:?}");
    }
    let json_log = ws.run_env(&["check", "--log-format", "json"], &trace).await;
    assert!(json_log.stderr.contains("\"level\":\"TRACE\""), "JSON trace logs were produced: {json_log:?}");
    json_log.assert_no_secrets();
}
