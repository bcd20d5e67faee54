//! Crash safety: kill -9 at random moments, many times, while tokens rotate every second.

use std::time::Duration;

use dhan_keeper::clock::{Clock, SystemClock};
use dhan_keeper::token::TokenStore;
use dhan_sim::SimConfig;
use serde_json::json;

use crate::daemon::{Stack, eventually};
use crate::helpers;

/// Kill rounds; each lasts up to 1.5 s of daemon life.
const ROUNDS: usize = 25;

#[tokio::test]
async fn kill_9_at_random_moments_never_breaks_the_file_and_the_daemon_recovers() {
    // 4 s tokens rotated 3 s before expiry: a rotation every second or so.
    let sim_cfg = SimConfig { token_lifetime: Duration::from_secs(4), ..helpers::sim_config() };
    let s = Stack::with_sim(sim_cfg, |m| {
        m.insert("refresh_before".into(), json!("3s"));
        m.insert("alert_before".into(), json!("2s"));
        m.insert("final_alert_before".into(), json!("1s"));
    })
    .await;
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let store = TokenStore::new(s.ws.token_path());
    let (mut during_rotation, mut files_checked) = (0, 0);
    for round in 0..ROUNDS {
        let d = s.start();
        let mints = s.sim.mints();
        // The kill moment is random; nothing below depends on timing.
        tokio::time::sleep(Duration::from_millis(rng.u64(30..1500))).await;
        d.kill9().await;
        if s.sim.mints() != mints {
            during_rotation += 1;
        }
        match store.load() {
            Ok(Some(token)) => {
                files_checked += 1;
                assert_eq!(token.client_id.as_deref(), Some("1000000001"), "round {round}, seed {seed}");
                assert!(dhan_keeper::dhan::jwt::decode(token.access_token.expose()).is_some(), "a whole JWT");
            }
            Ok(None) => {
                assert_eq!(s.sim.mints(), 0, "the file may be missing only before the first token (seed {seed})")
            }
            Err(e) => panic!("round {round}, seed {seed}: the token file is broken after kill -9: {e}"),
        }
    }
    println!(
        "kill -9 rounds: {ROUNDS}, with a rotation in progress or just done: {during_rotation}, files checked: {files_checked}, seed {seed}"
    );

    // Left alone, the daemon recovers by itself: the file holds the token Dhan accepts, valid.
    let d = s.start();
    eventually("recovery to the token Dhan accepts", || {
        let started = d.log().contains("reusing the saved token") || d.log().contains("new token saved");
        let t = store.load().ok().flatten().filter(|_| started)?;
        (Some(t.access_token.expose().to_string()) == s.sim.active_token() && !t.is_expired(SystemClock.now()))
            .then_some(())
    })
    .await;
    // Temp files of killed writers were removed at start (the live daemon's own may be mid-write).
    let live = format!(".tmp-{}-", d.pid());
    let leftovers: Vec<_> = std::fs::read_dir(s.ws.dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-") && !n.contains(&live))
        .collect();
    assert!(leftovers.is_empty(), "temp files of killed writers are cleaned up: {leftovers:?}");
    assert_eq!(s.stop(d).await.0, 0);
}
