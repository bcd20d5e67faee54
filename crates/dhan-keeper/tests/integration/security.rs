//! Attacks from issue 12, each performed against the real binary: another local user (or a
//! hostile web page, or a noisy hook, or a damaged file) tries to make the token expire or to
//! leak a secret. Each test prints the figures quoted in docs/reliability.md ("Security").

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::daemon::{CHAT, Daemon, STRANGER, Stack, eventually, short_sim};
use crate::helpers::{self, BOT_TOKEN, HTTP_TOKEN, PIN, TOTP_SECRET, Workspace};

fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn mkfifo(path: &std::path::Path) {
    assert!(std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo").success());
}

/// 1,000 attackers, each connecting again as soon as it is cut off, half of them sending 64 KiB
/// of headers that never end and half a few bytes then nothing, against a daemon allowed only
/// 256 descriptors (hard limit too, so it cannot raise it): the token still rotates, the
/// daemon's descriptors and memory stay bounded, and every attacker connection is closed.
#[tokio::test]
async fn a_connection_flood_cannot_starve_the_rotation() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const ATTACKERS: usize = 1000;
    let s = Stack::with_sim(short_sim(10), |_| {}).await;
    let d = Daemon::start_with(&s.ws, &["prlimit", "--nofile=256:256"], &[]);
    s.wait_message(CHAT, "New Dhan token").await;
    let pid = d.pid();

    // Core dumps are off.
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).expect("core line");
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");
    assert_eq!(core.split_whitespace().nth(5), Some("0"), "{core}");

    let base_fds = open_fds(pid);
    let mints = s.sim.mints();
    let stop = Arc::new(AtomicBool::new(false));
    let (made, cut) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let big = Arc::new(format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Fill: {}", "a".repeat(64 * 1024)));
    let port = s.http_port;
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|i| {
            let (stop, made, cut, big) = (Arc::clone(&stop), Arc::clone(&made), Arc::clone(&cut), Arc::clone(&big));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        continue;
                    };
                    made.fetch_add(1, Ordering::Relaxed);
                    let payload: &[u8] = if i % 2 == 0 { big.as_bytes() } else { b"GET /healthz HTTP/1.1\r\nX: a" };
                    let _ = tokio::time::timeout(Duration::from_millis(50), c.write_all(payload)).await;
                    let mut buf = [0u8; 1024];
                    loop {
                        tokio::select! {
                            r = c.read(&mut buf) => match r {
                                Ok(0) | Err(_) => { cut.fetch_add(1, Ordering::Relaxed); break; }
                                Ok(_) => {}
                            },
                            () = tokio::time::sleep(Duration::from_millis(200)) => {
                                if stop.load(Ordering::Relaxed) { return; }
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        })
        .collect();
    let started = Instant::now();
    let (mut peak_fds, mut peak_rss, mut rotated_after, mut client_after) = (0, 0, None, None);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().expect("client");
    // Hold the flood past the header timeout and until a rotation has happened under it.
    while started.elapsed() < Duration::from_secs(25) {
        peak_fds = peak_fds.max(open_fds(pid));
        peak_rss = peak_rss.max(proc_status(pid, "VmRSS:"));
        if rotated_after.is_none() && s.sim.mints() > mints {
            rotated_after = Some(started.elapsed());
        }
        if client_after.is_none() && http.get(s.http("/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
            client_after = Some(started.elapsed());
        }
        if rotated_after.is_some() && started.elapsed() > dhan_keeper::serve::HEADER_READ_TIMEOUT * 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        let _ = a.await;
    }
    let hwm = proc_status(pid, "VmHWM:");
    println!(
        "flood: {ATTACKERS} attackers made {} connections in {:.1}s, {} closed by the daemon; daemon fds {base_fds} \
         before, peak {peak_fds} (limit 256); RSS peak {peak_rss} kB sampled, VmHWM {hwm} kB; rotation under the \
         flood after {:?}; a real client served after {:?}",
        made.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        cut.load(Ordering::Relaxed),
        rotated_after,
        client_after,
    );
    assert!(rotated_after.is_some(), "no rotation during the flood; log:\n{}", d.log());
    let saved = s.token_file().expect("token file");
    assert_eq!(saved["access_token"].as_str(), s.sim.active_token().as_deref(), "the new token is on disk");
    assert!(made.load(Ordering::Relaxed) > ATTACKERS as u64, "the attackers did reconnect");
    assert!(cut.load(Ordering::Relaxed) >= ATTACKERS as u64, "the daemon cut attackers off");
    assert!(peak_fds <= base_fds + dhan_keeper::serve::MAX_CONNECTIONS + 8, "peak fds {peak_fds}");
    assert!(hwm < 64 * 1024, "the daemon grew to {hwm} kB; the unit's MemoryMax is 64M");
    assert_eq!(s.stop(d).await.0, 0);
}

/// A web page that rebinds its DNS name to 127.0.0.1 sends its own name as Host: refused.
#[tokio::test]
async fn a_rebound_host_name_is_refused() {
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    let client = reqwest::Client::new();
    let get = |host: &'static str| client.get(s.http("/healthz")).header("Host", host).send();
    assert_eq!(get("evil.example").await.expect("answer").status().as_u16(), 421);
    assert_eq!(get("attacker.test:80").await.expect("answer").status().as_u16(), 421);
    assert_eq!(get("localhost").await.expect("answer").status().as_u16(), 200);
    let ok = client.get(s.http("/metrics")).send().await.expect("answer");
    assert_eq!(ok.status().as_u16(), 200, "the plain 127.0.0.1 URL works");
    // A connection that says nothing is closed after the header timeout, not held forever.
    let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", s.http_port)).await.expect("connect");
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(15), idle.read(&mut buf)).await;
    assert!(closed.is_ok(), "an idle connection was still open after 15 s");
    let held = t.elapsed();
    println!("idle connection closed after {:.1}s", held.as_secs_f64());
    assert!(held < dhan_keeper::serve::HEADER_READ_TIMEOUT + Duration::from_secs(3), "{held:?}");
    assert_eq!(s.stop(d).await.0, 0);
}

/// Secrets given the documented way (DHAN_KEEPER_* variables) do not reach the hook; what the
/// hook prints is scrubbed of every secret and bounded in memory.
#[tokio::test]
async fn the_hook_sees_no_secret_and_its_noise_is_bounded() {
    let s = Stack::with_sim(short_sim(60), |m| {
        for key in ["pin", "totp_secret", "telegram_bot_token", "http_token"] {
            m.remove(key);
        }
        m.insert(
            "on_refresh".into(),
            json!([
                "sh",
                "-c",
                // Dumps its environment, 50 MB of noise, then a line with every secret spelled out.
                format!(
                    "env > hook-env; head -c 50000000 /dev/zero >&2; echo \"failed: {PIN} {TOTP_SECRET} {BOT_TOKEN} {HTTP_TOKEN} $DHAN_ACCESS_TOKEN $(env | tr '\\n' ' ')\" >&2; exit 3"
                )
            ]),
        );
    })
    .await;
    let d = Daemon::start_with(
        &s.ws,
        &[],
        &[
            ("DHAN_KEEPER_PIN", PIN),
            ("DHAN_KEEPER_TOTP_SECRET", TOTP_SECRET),
            ("DHAN_KEEPER_TELEGRAM_BOT_TOKEN", BOT_TOKEN),
            ("DHAN_KEEPER_HTTP_TOKEN", HTTP_TOKEN),
        ],
    );
    let alert = s.wait_message(CHAT, "on_refresh command").await;
    let text = alert["text"].as_str().unwrap_or_default().to_string();
    assert!(text.contains("The new token is saved") && text.contains("[redacted]"), "{text}");
    let env = std::fs::read_to_string(s.ws.dir.path().join("hook-env")).expect("the hook ran");
    assert!(env.contains("DHAN_ACCESS_TOKEN="), "the hook gets the token:\n{env}");
    assert!(!env.contains("DHAN_KEEPER_"), "the hook got the daemon's variables:\n{env}");
    let hwm = proc_status(d.pid(), "VmHWM:");
    println!("hook: 50 MB of stderr; daemon VmHWM {hwm} kB; alert: {text}");
    assert!(hwm < 64 * 1024, "the hook's output took the daemon to {hwm} kB");
    // The audit in stop() checks the log and every Telegram message for every secret and token.
    assert_eq!(s.stop(d).await.0, 0);
}

/// A symlink planted as the lock file is refused; its target is not truncated.
#[tokio::test]
async fn a_symlinked_lock_is_refused_and_its_target_kept() {
    let sim = helpers::sim().await;
    let ws = Workspace::new(&sim);
    let victim = ws.dir.path().join("victim.txt");
    std::fs::write(&victim, "precious").expect("write");
    std::os::unix::fs::symlink(&victim, ws.dir.path().join("dhan_token.json.lock")).expect("symlink");
    let run = ws.run(&["run"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "precious");
    run.assert_no_secrets();
}

/// A token directory other users can write to is refused, like sshd refuses such a home.
#[tokio::test]
async fn a_token_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let sim = helpers::sim().await;
    let ws = Workspace::new(&sim);
    std::fs::set_permissions(ws.dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let run = ws.run(&["run"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("writable by other users") && run.stderr.contains("chmod go-w"), "{}", run.stderr);
    assert_eq!(sim.mints(), 0, "nothing was minted");
    let check = ws.run(&["check"]).await;
    assert_ne!(check.code, 0, "{}", check.all());
    assert!(check.stdout.contains("❌ Token dir"), "{}", check.all());
    assert!(!check.stdout.contains("✅ Token dir"), "one verdict, not two: {}", check.all());

    // Sticky (like /tmp) is no better: another user could plant the token file first, so a
    // token read from there is not printed either.
    std::fs::set_permissions(ws.dir.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let planted = r#"{"access_token":"PLANTED-BY-ANOTHER-USER","expiry_time":"2099-01-01T00:00:00"}"#;
    std::fs::write(ws.token_path(), planted).expect("plant");
    let run = ws.run(&["run"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("writable by other users"), "{}", run.stderr);
    let token = ws.run(&["token", "--token-file", &ws.token_path().display().to_string()]).await;
    assert_eq!(token.code, 1, "{}", token.all());
    assert!(!token.stdout.contains("PLANTED"), "a planted token is never handed out: {}", token.all());
    let status = ws.run(&["status"]).await;
    assert_eq!(status.code, 1, "{}", status.all());
    assert!(!status.stdout.contains("✅"), "{}", status.all());
    assert_eq!(sim.mints(), 0, "nothing was minted");
    std::fs::set_permissions(ws.dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
}

/// A FIFO at the lock or state path never hangs `status` or `token` (they read without
/// blocking, regular files only).
#[tokio::test]
async fn status_and_token_never_wait_on_a_fifo() {
    let sim = helpers::sim().await;
    let ws = Workspace::new(&sim);
    let file = ws.token_path().display().to_string();
    mkfifo(&ws.dir.path().join("dhan_token.json.lock"));
    for args in [["status", "--token-file", &file], ["token", "--token-file", &file]] {
        let t = Instant::now();
        let run = ws.run(&args).await;
        assert!(t.elapsed() < Duration::from_secs(10), "{args:?} took {:?}", t.elapsed());
        assert_eq!(run.code, 1, "no token yet: {}", run.all());
    }
    std::fs::remove_file(ws.dir.path().join("dhan_token.json.lock")).expect("rm");
    assert_eq!(ws.run(&["refresh"]).await.code, 0);
    mkfifo(&ws.dir.path().join("dhan_token.json.state.fifo"));
    std::fs::rename(ws.dir.path().join("dhan_token.json.state.fifo"), ws.dir.path().join("dhan_token.json.state"))
        .expect("swap the state for a FIFO");
    let t = Instant::now();
    let run = ws.run(&["token", "--token-file", &file]).await;
    assert!(t.elapsed() < Duration::from_secs(10), "token took {:?}", t.elapsed());
    assert_eq!(run.code, 0, "{}", run.all());
}

/// A FIFO at the token path neither hangs the commands nor the daemon: at start it is refused
/// at once; while running, it is replaced and SIGTERM still works.
#[tokio::test]
async fn a_fifo_at_the_token_path_never_freezes_anything() {
    let s = Stack::new(|_| {}).await;
    mkfifo(&s.ws.token_path());
    for cmd in [&["status"][..], &["token"], &["run"]] {
        let t = Instant::now();
        let run = s.ws.run(cmd).await;
        assert_ne!(run.code, 0, "{cmd:?}: {}", run.all());
        assert!(run.all().contains("not a regular file"), "{cmd:?}: {}", run.all());
        assert!(t.elapsed() < Duration::from_secs(10), "{cmd:?} took {:?}", t.elapsed());
    }
    std::fs::remove_file(s.ws.token_path()).expect("rm fifo");

    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    // Swapped in with a rename: the daemon watches the directory and would restore a deleted
    // file before a FIFO could be made in its place.
    let fifo = s.ws.dir.path().join("swap.fifo");
    mkfifo(&fifo);
    std::fs::rename(&fifo, s.ws.token_path()).expect("swap the FIFO in");
    eventually("the FIFO replaced by the token file", || {
        std::fs::symlink_metadata(s.ws.token_path()).ok().filter(|m| m.is_file()).map(|_| ())
    })
    .await;
    s.ask(CHAT, "/status", "Expires").await;
    let (code, took, _) = s.stop(d).await;
    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(5));
}

/// 2,000 unknown chats write at once; the admin's /status is still answered within a second,
/// and the admin hears of the strangers in a few lines, not 2,000.
#[tokio::test]
async fn a_stranger_flood_does_not_delay_the_admin() {
    const FLOOD: i64 = 2000;
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    s.ask(CHAT, "/status", "Expires").await;
    let before = s.texts(CHAT).len();
    for i in 0..FLOOD {
        s.tg.inject_text(STRANGER + i, STRANGER + i, "/refresh");
    }
    let t = Instant::now();
    let reply = s.ask(CHAT, "/status", "Expires").await;
    let took = t.elapsed();
    // Let the rest of the flood drain, then count what the admin was sent about it.
    eventually("the flood handled", || d.log().contains(&format!("chat={}", STRANGER + FLOOD - 1)).then_some(())).await;
    let notices = s.texts(CHAT)[before..].iter().filter(|m| m.contains("unknown chat")).count();
    println!(
        "strangers: {FLOOD} chats, admin /status answered in {} ms; {notices} notices to the admin",
        took.as_millis()
    );
    assert!(reply.contains("Expires"));
    assert!(took < Duration::from_secs(1), "/status took {took:?} behind {FLOOD} strangers");
    assert!(notices <= 5, "{notices} stranger notices");
    assert_eq!(s.sim.mints(), 1, "no stranger caused a mint");
    assert_eq!(s.stop(d).await.0, 0);
}

/// An update at the very top of Telegram's id range is handled once, not forever.
#[tokio::test]
async fn an_update_id_at_the_top_of_the_range_is_handled_once() {
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    s.tg.set_next_update_id(i64::MAX);
    s.ask(CHAT, "/help", "Commands").await;
    // The poller comes back for more several times; the update must not be handled again.
    let polls = s.tg.calls().iter().filter(|c| *c == "getupdates").count();
    eventually("more polls", || (s.tg.calls().iter().filter(|c| *c == "getupdates").count() > polls + 3).then_some(()))
        .await;
    assert_eq!(s.count(CHAT, "Commands"), 1, "{:?}", s.texts(CHAT));
    assert_eq!(s.stop(d).await.0, 0);
}

/// A state file with an impossible last-mint instant used to panic on every start.
#[tokio::test]
async fn an_absurd_state_file_does_not_crash_the_daemon() {
    let s = Stack::new(|_| {}).await;
    let far = chrono::DateTime::<chrono::Utc>::MAX_UTC.fixed_offset();
    let state = json!({"last_mint_at": far, "last_attempt": {"at": far, "ok": false, "what": "x"}});
    std::fs::write(s.ws.dir.path().join("dhan_token.json.state"), state.to_string()).expect("state");
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    assert!(d.log().contains("impossible values"), "{}", d.log());
    assert_eq!(s.stop(d).await.0, 0);
}

/// A token file left 0644 (or another user's) is rewritten private at start.
#[tokio::test]
async fn a_world_readable_token_file_is_fixed_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let s = Stack::new(|_| {}).await;
    let path = s.ws.token_path();
    std::fs::write(&path, json!({"access_token": "eyJ.old.token", "expiry_time": "2099-01-01T00:00:00"}).to_string())
        .expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let d = s.start();
    eventually("the warning", || d.log().contains("wrong owner or permissions").then_some(())).await;
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(s.stop(d).await.0, 0);
}

/// token_file pointing at the config is refused, and the config is left where it is.
#[tokio::test]
async fn a_token_file_that_is_not_one_is_never_replaced() {
    let sim = helpers::sim().await;
    let ws = Workspace::with(&sim, |m| {
        m.insert("token_file".into(), json!("dhan_config.json"));
    });
    let before = std::fs::read(ws.config_path()).expect("config");
    let run = ws.run(&["run"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("does not look like a token file"), "{}", run.stderr);
    assert_eq!(std::fs::read(ws.config_path()).expect("config"), before, "the config is untouched");
    let aside = std::fs::read_dir(ws.dir.path())
        .expect("dir")
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains("corrupt"));
    assert!(!aside, "nothing was set aside");
    run.assert_no_secrets();
}

/// A token written to a temp file just before a crash is promoted, not deleted.
#[tokio::test]
async fn a_token_left_in_a_temp_file_is_promoted() {
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    s.stop(d).await;
    // The crash: the newest token only made it to the temp file.
    let saved = std::fs::read(s.ws.token_path()).expect("token");
    std::fs::write(s.ws.dir.path().join(".dhan_token.json.tmp-999-0000abcd"), &saved).expect("temp");
    std::fs::write(
        s.ws.token_path(),
        json!({"access_token": "eyJ.old", "expiry_time": "2000-01-01T00:00:00"}).to_string(),
    )
    .expect("old");
    let mints = s.sim.mints();
    let d = s.start();
    eventually("the temp promoted", || d.log().contains("found in a temp file").then_some(())).await;
    eventually("the token reused", || (std::fs::read(s.ws.token_path()).ok()? == saved).then_some(())).await;
    assert_eq!(s.sim.mints(), mints, "no mint: the promoted token is alive");
    assert_eq!(s.stop(d).await.0, 0);
}

/// Config-level attacks and mistakes: each refused with a message naming the key and the fix,
/// promptly (no FIFO hang), and never echoing a secret.
#[tokio::test]
async fn config_hardening_refuses_with_clear_messages() {
    let sim = helpers::sim().await;
    let ws = Workspace::new(&sim);
    let check = |run: &helpers::Run, needle: &str| {
        assert_eq!(run.code, 2, "{needle}: {}", run.all());
        assert!(run.stderr.contains(needle), "expected {needle:?} in:\n{}", run.stderr);
        run.assert_no_secrets();
    };
    // Duplicate keys: the wrong PIN would have been used silently.
    let base = std::fs::read_to_string(ws.config_path()).expect("config");
    ws.write_config(&base.replacen('{', "{\n  \"pin\": \"111111\",", 1));
    check(&ws.run(&["status"]).await, "`pin` appears more than once");
    ws.write_config(&base);

    // A FIFO as the config itself, and an oversized config.
    std::fs::remove_file(ws.config_path()).expect("rm config");
    mkfifo(&ws.config_path());
    let t = Instant::now();
    let run = ws.run(&["status"]).await;
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("cannot read config file") && run.stderr.contains("not a regular file"),
        "{}",
        run.stderr
    );
    std::fs::remove_file(ws.config_path()).expect("rm fifo");
    ws.write_config(&format!("{base}{}", " ".repeat(2 * 1024 * 1024)));
    let run = ws.run(&["status"]).await;
    assert!(run.code == 1 && run.stderr.contains("larger than"), "{}", run.all());
    ws.write_config(&base);

    // A FIFO as a *_file secret.
    let fifo = ws.dir.path().join("pin.fifo");
    mkfifo(&fifo);
    let t = Instant::now();
    let run = ws.run_env(&["status"], &[("DHAN_KEEPER_PIN_FILE", fifo.to_str().expect("utf8"))]).await;
    assert!(t.elapsed() < Duration::from_secs(10));
    // `pin` is also in the file: both set is reported; without it, the FIFO itself is.
    assert_eq!(run.code, 2, "{}", run.all());
    let no_pin: serde_json::Value = serde_json::from_str(&base).expect("json");
    let mut no_pin = no_pin.as_object().expect("object").clone();
    no_pin.remove("pin");
    ws.write_config(&serde_json::to_string(&no_pin).expect("json"));
    let run = ws.run_env(&["status"], &[("DHAN_KEEPER_PIN_FILE", fifo.to_str().expect("utf8"))]).await;
    check(&run, "`pin_file`");
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    // An oversized secret file.
    let big = ws.dir.path().join("pin.big");
    std::fs::write(&big, vec![b'1'; 100_000]).expect("big");
    check(&ws.run_env(&["status"], &[("DHAN_KEEPER_PIN_FILE", big.to_str().expect("utf8"))]).await, "larger than");
    ws.write_config(&base);

    let edit = |k: &str, v: serde_json::Value| {
        let mut m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&base).expect("json");
        m.insert(k.into(), v);
        serde_json::to_string(&m).expect("json")
    };
    // Plain http to another machine would carry the PIN and TOTP code in clear.
    ws.write_config(&edit("dhan_auth_url", json!("http://auth.example.com")));
    check(&ws.run(&["status"]).await, "plain http://");
    // Non-loopback listen needs the explicit opt-in, and the opt-in needs http_token.
    ws.write_config(&edit("http_listen", json!("0.0.0.0:8765")));
    check(&ws.run(&["status"]).await, "http_allow_remote");
    let mut m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&base).expect("json");
    m.insert("http_listen".into(), json!("0.0.0.0:8765"));
    m.insert("http_allow_remote".into(), json!(true));
    m.remove("http_token");
    ws.write_config(&serde_json::to_string(&m).expect("json"));
    check(&ws.run(&["status"]).await, "needs `http_token`");
    // token_file_mode: others never, owner always.
    ws.write_config(&edit("token_file_mode", json!("0644")));
    check(&ws.run(&["status"]).await, "`token_file_mode` \"0644\" is not allowed");
    ws.write_config(&edit("token_file_group", json!("no-such-group-xyz")));
    check(&ws.run(&["status"]).await, "`token_file_group` \"no-such-group-xyz\"");
    ws.write_config(&base);
}

/// `http_allow_remote` with `http_token` may listen beyond loopback and `check` says so; the
/// token file gets the configured mode and group on every write.
#[tokio::test]
async fn opt_in_remote_listen_and_a_group_readable_token_file() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let gid = std::fs::metadata("/proc/self").map(|m| m.gid()).expect("own gid");
    let s = Stack::new(|m| {
        m.insert("token_file_mode".into(), json!("0640"));
        m.insert("token_file_group".into(), json!(gid.to_string()));
    })
    .await;
    let loopback = std::fs::read_to_string(s.ws.config_path()).expect("config");
    let mut remote: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&loopback).expect("json");
    remote.insert("http_listen".into(), json!("0.0.0.0:8765"));
    remote.insert("http_allow_remote".into(), json!(true));
    s.ws.write_config(&serde_json::to_string(&remote).expect("json"));
    // `check` does not bind; it reports the plan.
    let check = s.ws.run(&["check"]).await;
    assert!(check.stdout.contains("reachable beyond this machine"), "{}", check.all());
    s.ws.write_config(&loopback);
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    let meta = std::fs::metadata(s.ws.token_path()).expect("token");
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert_eq!(meta.gid(), gid);
    assert_eq!(s.stop(d).await.0, 0);
}
