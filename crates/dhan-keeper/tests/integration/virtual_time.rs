//! The fast layer: `app::start` in this process with a `ManualClock`, the Dhan simulator's clock
//! following it, so 24-hour rules (rotation times, market-hours deferral, the re-probe) run in
//! virtual time in a second or two. The end-to-end suite (the real binary, real time, seconds-long
//! tokens) stays beside it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dhan_keeper::app::{self, Running};
use dhan_keeper::clock::ManualClock;
use dhan_keeper::config::Config;
use dhan_sim::{DhanSim, Fault, SimConfig, TelegramSim, TokenRejection};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::daemon::{CHAT, eventually};
use crate::helpers::{self, BOT_TOKEN, Workspace};

fn ist(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).expect("a valid instant")
}

#[allow(clippy::disallowed_methods)] // the simulator's offset is relative to the real clock
fn real_now() -> DateTime<Utc> {
    Utc::now()
}

/// A keeper running in this process at a virtual instant.
struct Virtual {
    sim: DhanSim,
    tg: TelegramSim,
    clock: ManualClock,
    running: Option<Running>,
    shutdown: CancellationToken,
    _ws: Workspace,
}

impl Virtual {
    async fn start(at: DateTime<Utc>, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Self {
        let sim = DhanSim::start(SimConfig { mint_cooldown: Duration::from_millis(100), ..helpers::sim_config() })
            .await
            .expect("dhan sim");
        let tg = TelegramSim::start(BOT_TOKEN).await.expect("telegram sim");
        tg.add_chat(CHAT);
        let ws = Workspace::with(&sim, |m| {
            m.insert("telegram_api_url".into(), json!(tg.url()));
            m.insert("telegram_chat_id".into(), json!(CHAT.to_string()));
            m.remove("http_listen");
            m.insert("mint_cooldown".into(), json!("125s"));
            edit(m);
        });
        let cfg = Config::load_with_env(Some(ws.config_path()), &|_| None).expect("config");
        let clock = ManualClock::new(at);
        sim.set_clock_offset(at - real_now());
        let shutdown = CancellationToken::new();
        let running = app::start(cfg, Arc::new(clock.clone()), shutdown.clone()).await.expect("starts");
        Self { sim, tg, clock, running: Some(running), shutdown, _ws: ws }
    }

    fn keeper(&self) -> &dhan_keeper::lifecycle::Keeper {
        &self.running.as_ref().expect("running").keeper
    }

    /// Moves virtual time (the keeper's and Dhan's) and lets the keeper look at it.
    fn advance_to(&self, to: DateTime<Utc>) {
        self.clock.set(to);
        self.sim.set_clock_offset(to - real_now());
        self.keeper().wake();
    }

    fn obtained_at(&self) -> Option<DateTime<Utc>> {
        self.keeper().token().and_then(|t| t.obtained_at).map(|t| t.with_timezone(&Utc))
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(r) = self.running.take() {
            r.join().await;
        }
    }
}

#[tokio::test]
async fn a_day_of_24_hour_tokens_rotates_on_time_outside_the_session_in_virtual_time() {
    // Monday 20:00 IST, after the close; a fixed window makes the session plain.
    let v = Virtual::start(ist("2026-11-23T20:00:00+05:30"), |m| {
        m.insert("market_hours".into(), json!("09:00-15:30"));
    })
    .await;
    eventually("the first token", || v.keeper().token()).await;
    assert_eq!(v.sim.mints(), 1);
    // Expiry Tue 20:00; refresh_before 30m: the rotation is planned for Tue 19:30.
    let due = eventually("the plan", || v.keeper().view().next_rotation).await;
    assert_eq!(due, ist("2026-11-24T19:30:00+05:30"));

    v.advance_to(ist("2026-11-24T19:29:00+05:30"));
    v.advance_to(ist("2026-11-24T19:31:00+05:30"));
    eventually("the rotation", || (v.sim.mints() == 2).then_some(())).await;
    let at = v.obtained_at().expect("obtained");
    assert!(at >= ist("2026-11-24T19:30:00+05:30"), "not before it was due: {at}");
    assert_eq!(v.sim.calls("RenewToken"), 0);
    v.stop().await;
}

#[tokio::test]
async fn a_deadline_inside_the_session_moves_before_the_open_in_virtual_time() {
    // Minted Wednesday 11:00 IST, inside the session: it expires Thursday 11:00, so the
    // rotation moves to Thursday 08:30 (refresh_before before the 09:00 open).
    let v = Virtual::start(ist("2026-11-25T11:00:00+05:30"), |m| {
        m.insert("market_hours".into(), json!("09:00-15:30"));
    })
    .await;
    eventually("the first token", || v.keeper().token()).await;
    let due = eventually("the plan", || v.keeper().view().next_rotation).await;
    assert_eq!(due, ist("2026-11-26T08:30:00+05:30"));
    v.advance_to(ist("2026-11-26T08:31:00+05:30"));
    eventually("the rotation before the open", || (v.sim.mints() == 2).then_some(())).await;
    v.stop().await;
}

#[tokio::test]
async fn re_probes_run_on_their_cadence_in_virtual_time() {
    let t0 = ist("2026-11-28T12:00:00+05:30"); // Saturday: no session to avoid
    let v = Virtual::start(t0, |_| {}).await;
    eventually("the first token", || v.keeper().token()).await;
    let first = v.keeper().token().map(|t| t.access_token.expose().to_string());
    let profiles = v.sim.calls("profile");

    // One rejection at the 15-minute check: re-probed 10 s later, accepted, nothing minted.
    v.sim.inject("profile", Fault::RejectToken { code: TokenRejection::Dh906 }, 1);
    v.advance_to(t0 + chrono::Duration::minutes(15));
    eventually("the check", || v.keeper().live().suspect).await;
    v.advance_to(t0 + chrono::Duration::minutes(15) + chrono::Duration::seconds(10));
    eventually("the re-probe clears it", || {
        (v.keeper().live().suspect.is_none() && v.sim.calls("profile") >= profiles + 2).then_some(())
    })
    .await;
    assert_eq!(v.sim.mints(), 1);

    // A token superseded for real: three rejections 10 s apart, then a mint and an alert.
    v.sim.mint_elsewhere();
    let t1 = t0 + chrono::Duration::minutes(31); // the next 15-minute check is due
    v.advance_to(t1);
    eventually("rejection 1", || v.keeper().live().suspect.filter(|s| s.rejections == 1)).await;
    v.advance_to(t1 + chrono::Duration::seconds(10));
    eventually("rejection 2", || v.keeper().live().suspect.filter(|s| s.rejections == 2)).await;
    assert_eq!(v.sim.mints(), 1, "not replaced on suspicion");
    v.advance_to(t1 + chrono::Duration::seconds(20));
    eventually("replaced", || (v.sim.mints() == 2).then_some(())).await;
    assert_ne!(v.keeper().token().map(|t| t.access_token.expose().to_string()), first);
    eventually("the trader is told", || {
        v.tg.sent(CHAT).iter().any(|m| m["text"].as_str().is_some_and(|t| t.contains("revoked"))).then_some(())
    })
    .await;
    v.stop().await;
}
