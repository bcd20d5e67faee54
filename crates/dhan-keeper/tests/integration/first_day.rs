//! Issue 11, "the first day of a real user": what a newcomer and their trading program see.
//! The token hand-off without the config, the truth in `status` for a token Dhan rejected, a
//! deleted token file restored within a second, `check` catching what would fail later, a closed
//! pipe, and the systemd layout run under an unprivileged uid (when the tests run as root).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use dhan_sim::Fault;
use serde_json::json;

use crate::daemon::{Stack, eventually};
use crate::helpers::{self, Run, Workspace, sim};

/// Runs the binary with a clean environment, in `cwd`, with no `--config`.
fn bare(args: &[&str], cwd: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dhan-keeper"));
    cmd.args(args).current_dir(cwd);
    for (k, _) in std::env::vars() {
        if k.starts_with("DHAN_KEEPER_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn output(mut cmd: std::process::Command) -> Run {
    Run::from(cmd.output().expect("dhan-keeper runs"))
}

#[tokio::test]
async fn token_and_status_need_only_the_token_file_not_the_config() {
    let sim = sim().await;
    let ws = Workspace::new(&sim);
    assert_eq!(ws.run(&["refresh"]).await.code, 0);
    let token = ws.token_json()["access_token"].as_str().expect("token").to_string();
    // Another directory, no config anywhere: what a trading program's user has.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let file = ws.token_path();
    let file = file.to_str().expect("utf-8 path");
    let printed = output(bare(&["token", "--token-file", file], elsewhere.path()));
    assert_eq!((printed.code, printed.stdout.trim()), (0, token.as_str()), "{printed:?}");
    let status = output(bare(&["status", "--token-file", file], elsewhere.path()));
    assert_eq!(status.code, 0, "{status:?}");
    assert!(status.stdout.contains("✅ valid") && !status.stdout.contains("Mode"), "{status:?}");
    assert!(!status.all().contains(&token), "status never prints the token");
    // The same through the environment variable the systemd unit and the Dockerfile set.
    let mut cmd = bare(&["token"], elsewhere.path());
    cmd.env("DHAN_KEEPER_TOKEN_FILE", file);
    assert_eq!(output(cmd).stdout.trim(), token);
    // `docker exec dhan-keeper dhan-keeper token`: the image sets both variables; the config in
    // the volume may be absent (a config made of variables) and is not read at all.
    let mut cmd = bare(&["token"], Path::new("/"));
    cmd.env("DHAN_KEEPER_TOKEN_FILE", file).env("DHAN_KEEPER_CONFIG", elsewhere.path().join("missing.json"));
    let exec = output(cmd);
    assert_eq!((exec.code, exec.stdout.trim()), (0, token.as_str()), "{exec:?}");
    // No config and no --token-file: the error names the config it looked for.
    let lost = output(bare(&["token"], elsewhere.path()));
    assert_ne!(lost.code, 0);
    assert!(lost.stderr.contains("dhan_config.json"), "{lost:?}");
    status.assert_no_secrets();
}

#[tokio::test]
async fn a_token_dhan_rejected_is_never_shown_valid_nor_printed() {
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    let first = eventually("the first token", || s.token_file()).await;
    let file = s.ws.token_path();
    let state = s.ws.dir.path().join("dhan_token.json.state");
    let accepted = |want: bool| {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).ok()?).ok()?;
        (v["token_health"]["accepted"] == json!(want)).then_some(())
    };
    eventually("the daemon's verdict on the first token", || accepted(true)).await;
    let ok = output(bare(&["status", "--token-file", file.to_str().expect("utf-8")], s.ws.dir.path()));
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(ok.stdout.contains("Dhan        accepted it"), "{ok:?}");

    // Dhan Web mints a token (ours dies) and Dhan cannot mint a replacement for a while.
    s.sim.inject("generateAccessToken", Fault::Status { status: 500 }, 1000);
    s.sim.mint_elsewhere();
    eventually("the daemon to record the rejection", || accepted(false)).await;
    assert_eq!(s.token_file().map(|f| f["access_token"].clone()), Some(first["access_token"].clone()));
    let status = s.ws.run(&["status"]).await;
    assert_eq!(status.code, 1, "{status:?}");
    assert!(status.stdout.contains("rejected by Dhan") && !status.stdout.contains('✅'), "{status:?}");
    assert!(status.stdout.contains("running daemon (pid"), "advice fits a running daemon: {status:?}");
    assert!(status.stdout.contains("running `dhan-keeper run`"), "{status:?}");
    assert!(!status.stdout.contains("dhan-keeper dhan-keeper"), "the holder is named once: {status:?}");
    assert!(!status.stdout.contains("dhan-keeper refresh"), "refresh cannot work while run holds the lock: {status:?}");
    let json = s.ws.run(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!((v["state"].as_str(), v["dhan_accepted"].as_bool()), (Some("rejected"), Some(false)), "{v}");
    let token = s.ws.run(&["token"]).await;
    assert_eq!(token.code, 1, "{token:?}");
    assert!(token.stdout.is_empty() && token.stderr.contains("rejected"), "{token:?}");
    let (_, _, log) = s.stop(d).await;
    // Log timestamps are IST by default, with the offset written out.
    let first_line = log.lines().next().unwrap_or_default();
    assert!(first_line.contains("+05:30"), "{first_line}");
}

#[tokio::test]
async fn config_mistakes_get_a_hint_that_fixes_them() {
    let sim = sim().await;
    let ws = Workspace::with(&sim, |m| {
        m.insert("telegram_chatid".into(), json!("123"));
    });
    let typo = ws.run(&["status"]).await;
    assert!(typo.stderr.contains("did you mean `telegram_chat_id`?"), "{typo:?}");
    assert_eq!(typo.stderr.matches("telegram_chatid").count(), 1, "the warning is printed once: {typo:?}");
    let check = ws.run(&["check"]).await;
    assert_eq!(check.all().matches("telegram_chatid").count(), 1, "check prints the warning once: {check:?}");
    ws.write_config("{'client_id': '1000000001', 'pin': '123456', 'debug': True}");
    let python = ws.run(&["check"]).await;
    assert_eq!(python.code, 2, "{python:?}");
    assert!(python.stderr.contains("Python dict") && python.stderr.contains("double quotes"), "{python:?}");
    assert!(!python.stderr.contains("123456"), "the PIN is not echoed: {python:?}");
}

#[tokio::test]
async fn a_deleted_or_replaced_token_file_is_restored_within_a_second() {
    // Long tokens and checks, so nothing but the watcher brings the file back quickly.
    let s = Stack::with_sim(crate::daemon::short_sim(3600), |m| {
        m.insert("verify_every".into(), json!("10m"));
        m.insert("refresh_before".into(), json!("5m"));
        m.insert("alert_before".into(), json!("4m"));
        m.insert("final_alert_before".into(), json!("1m"));
    })
    .await;
    let d = s.start();
    let saved = eventually("the first token", || s.token_file()).await;
    // Let the loop settle into its long nap (it checks the fresh token once, then sleeps).
    eventually("the daemon's first check", || {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(s.ws.dir.path().join("dhan_token.json.state")).ok()?).ok()?;
        v["token_health"]["accepted"].as_bool()
    })
    .await;
    for damage in ["delete", "replace"] {
        match damage {
            "delete" => std::fs::remove_file(s.ws.token_path()).expect("rm"),
            _ => helpers::write_private(
                &s.ws.token_path(),
                r#"{"access_token": "someone-elses", "expiry_time": "2099-01-01T09:00:00"}"#,
            ),
        }
        let t = Instant::now();
        let back = eventually(&format!("the token file back after {damage}"), || {
            s.token_file().filter(|f| f["access_token"] == saved["access_token"])
        })
        .await;
        let took = t.elapsed();
        assert!(took < Duration::from_secs(1), "{damage}: restored after {took:?}, not within a second");
        assert_eq!(back["expiry_time"], saved["expiry_time"]);
    }
    assert_eq!(s.sim.mints(), 1, "restoring is a write, not a mint");
    s.stop(d).await;
}

#[tokio::test]
async fn check_catches_what_would_fail_later_and_prints_the_plan() {
    let sim = sim().await;
    let ws = Workspace::with(&sim, |m| {
        m.insert("token_file".into(), json!("no-such-dir/dhan_token.json"));
        m.insert("on_refresh".into(), json!(["./reload.sh"]));
        m.insert("http_token".into(), json!("changeme-changeme-changeme"));
        m.insert("telegram_bot_token".into(), serde_json::Value::Null);
        m.insert("telegram_chat_id".into(), serde_json::Value::Null);
    });
    std::fs::write(ws.dir.path().join("reload.sh"), "#!/bin/sh\n").expect("write");
    let run = ws.run(&["check"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    for want in ["no-such-dir does not exist", "is not executable (chmod +x", "http_token", "placeholder"] {
        assert!(run.stdout.contains(want), "{want:?} missing: {run:?}");
    }
    assert!(run.stdout.contains("The plan") && run.stdout.contains("Market hours: every equity session"), "{run:?}");
    assert!(run.stdout.contains("Next rotation at once"), "{run:?}");
    run.assert_no_secrets();

    // Fixed, the same checks pass and the plan names the next rotation and alert.
    let ws = Workspace::with(&sim, |m| {
        m.insert("telegram_bot_token".into(), serde_json::Value::Null);
        m.insert("telegram_chat_id".into(), serde_json::Value::Null);
    });
    assert_eq!(ws.run(&["refresh"]).await.code, 0);
    let run = ws.run(&["check"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("is writable") && run.stdout.contains("bearer token required"), "{run:?}");
    assert!(run.stdout.contains("Next rotation ") && run.stdout.contains("Next alert"), "{run:?}");
}

#[tokio::test]
async fn init_writes_a_private_template_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = output(bare(&["init"], dir.path()));
    assert_eq!(first.code, 0, "{first:?}");
    let path = dir.path().join("dhan_config.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).expect("written").permissions().mode() & 0o777, 0o600);
    let again = output(bare(&["init"], dir.path()));
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("already exists"), "{again:?}");
    // The template is a config `check` understands: it names what to fill in, not a syntax error.
    let check = output(bare(&["check"], dir.path()));
    assert_eq!(check.code, 2, "{check:?}");
    assert!(check.stderr.contains("client_id"), "{check:?}");
}

#[test]
fn a_closed_pipe_ends_check_quietly() {
    // `dhan-keeper check | head -1`: read the first line, close the pipe; `check` writes its next
    // line only after Dhan (a socket that never answers) times out, so into a closed pipe.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let sim_dir = tempfile::tempdir().expect("tempdir");
    let cfg = sim_dir.path().join("dhan_config.json");
    helpers::write_private(
        &cfg,
        &json!({"client_id": "1000000001", "pin": "123456", "totp_secret": helpers::TOTP_SECRET,
                "dhan_auth_url": url, "dhan_api_url": url, "dhan_timeout": "2s",
                "market_hours": "off"})
        .to_string(),
    );
    let mut cmd = bare(&["check", "--config", cfg.to_str().expect("utf-8")], sim_dir.path());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 8];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("the first bytes");
    drop(stdout);
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "a closed pipe is not a failure: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
    drop(silent);
}

/// The systemd unit's layout (contrib/dhan-keeper.service): the config and secrets come from a
/// credentials directory readable only by the service's uid, the token goes to its state
/// directory, and the trading program reads it with `token --token-file`, no config needed.
/// Needs root to switch uids; otherwise it says why and passes without running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_systemd_layout_works_under_an_unprivileged_uid() {
    if !is_root() {
        println!("SKIPPED: needs root to run the binary as another uid (setpriv); not run");
        return;
    }
    let Some(setpriv) = ["/usr/bin/setpriv", "/bin/setpriv"].into_iter().find(|p| Path::new(p).exists()) else {
        println!("SKIPPED: setpriv (util-linux) is not installed; not run");
        return;
    };
    const SERVICE: u32 = 61_934; // a DynamicUser-range uid
    const TRADER: u32 = 61_935;
    let sim = sim().await;
    let root = tempfile::tempdir().expect("tempdir");
    let base = root.path();
    chmod(base, 0o755);
    let creds = base.join("credentials"); // $CREDENTIALS_DIRECTORY: 0500, files 0400, owned by the service
    let state = base.join("state"); // StateDirectory=dhan-keeper, StateDirectoryMode=0700
    std::fs::create_dir(&creds).expect("mkdir");
    std::fs::create_dir(&state).expect("mkdir");
    let config = json!({"client_id": "1000000001", "dhan_auth_url": sim.url(), "dhan_api_url": sim.url(),
                        "market_hours": "off"});
    for (name, body) in [
        ("dhan_config.json", config.to_string()),
        ("pin", helpers::PIN.into()),
        ("totp_secret", helpers::TOTP_SECRET.into()),
    ] {
        let p = creds.join(name);
        std::fs::write(&p, body).expect("write");
        chown(&p, SERVICE);
        chmod(&p, 0o400);
    }
    chown(&creds, SERVICE);
    chmod(&creds, 0o500);
    chown(&state, SERVICE);
    chmod(&state, 0o700);
    let token_file = state.join("dhan_token.json");
    let as_uid = |uid: u32, args: &[&str]| {
        let mut c = std::process::Command::new(setpriv);
        c.args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into()])
            .arg(env!("CARGO_BIN_EXE_dhan-keeper"))
            .args(args)
            .current_dir("/")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("DHAN_KEEPER_CONFIG", creds.join("dhan_config.json"))
            .env("DHAN_KEEPER_TOKEN_FILE", &token_file)
            .env("DHAN_KEEPER_PIN_FILE", creds.join("pin"))
            .env("DHAN_KEEPER_TOTP_SECRET_FILE", creds.join("totp_secret"));
        output(c)
    };
    let minted = as_uid(SERVICE, &["refresh"]);
    assert_eq!(minted.code, 0, "the service uid reads its credentials and writes its state dir: {minted:?}");
    minted.assert_no_secrets();
    let meta = std::fs::metadata(&token_file).expect("token file");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!((meta.uid(), meta.permissions().mode() & 0o777), (SERVICE, 0o600));
    let token = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&token_file).expect("read")).expect("json")
        ["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let path = token_file.to_str().expect("utf-8");
    // The service's own uid (a hook, `systemd-run -p DynamicUser` …) reads it without the config.
    let own = as_uid(SERVICE, &["token", "--token-file", path]);
    assert_eq!((own.code, own.stdout.trim()), (0, token.as_str()), "{own:?}");
    // Another user cannot: the file is private. The message says which file and why.
    let other = as_uid(TRADER, &["token", "--token-file", path]);
    assert_eq!(other.code, 1, "{other:?}");
    assert!(
        other.stderr.contains("dhan_token.json") && other.stderr.to_lowercase().contains("permission"),
        "{other:?}"
    );
    assert!(!other.all().contains(&token));
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(uid)).expect("chown");
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[tokio::test]
async fn the_interactive_demo_answers_what_the_newcomer_types() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_dhan-keeper"));
    cmd.args(["demo", "--interactive"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("demo starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = String::new();
    let mut until = async |needle: &str, seen: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, lines.next_line()).await {
                Ok(Ok(Some(l))) => {
                    seen.push_str(&l);
                    seen.push('\n');
                }
                _ => panic!("no {needle:?} in the demo's output:\n{seen}"),
            }
        }
    };
    until("Your turn", &mut seen).await;
    stdin.write_all(b"/status\n").await.expect("type");
    until("Token: 🟢 valid", &mut seen).await;
    stdin.write_all(b"web\n").await.expect("type");
    until("Dhan token revoked", &mut seen).await;
    stdin.write_all(b"quit\n").await.expect("type");
    until("Bye.", &mut seen).await;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits").expect("wait");
    assert!(status.success(), "{status:?}\n{seen}");
}
