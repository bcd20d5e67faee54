//! A family's accounts in a fleet: two hosts, each keeping the same two accounts, one Redis.
//! Each client id has its own lease and its own shared record, so each account is minted once
//! per rotation fleet-wide, and both hosts hold each account's live token.

use std::time::{Duration, Instant};

use dhan_sim::{DhanSim, SimClient, SimConfig, TelegramSim};
use serde_json::{Value, json};

use crate::accounts::{MOM, MOM_PIN, MOM_TOTP};
use crate::daemon::{CHAT, Daemon, free_port, quick_keys};
use crate::fleet_harness::{FLEET_KEY, LEASE};
use crate::helpers::*;
use crate::redis_server::RedisServer;

const ASHA: &str = "1000000001";
const LIFETIME_S: u64 = 12;
const REFRESH_BEFORE_S: u64 = 8;

fn host(sim: &DhanSim, tg: &TelegramSim, redis: &RedisServer, name: &str) -> Workspace {
    let http_port = free_port();
    Workspace::with(sim, |m| {
        for key in ["client_id", "pin", "totp_secret", "api_key", "api_secret"] {
            m.remove(key);
        }
        m.extend(quick_keys(tg, http_port));
        let shared = json!({
            "refresh_before": format!("{REFRESH_BEFORE_S}s"),
            "alert_before": "3s",
            "final_alert_before": "1s",
            "dhan_timeout": "800ms",
            "redis_url": redis.url(),
            "node_name": name,
            "fleet_key": FLEET_KEY,
            "fleet_lease": humantime::format_duration(LEASE).to_string(),
            "accounts": [
                {"label": "asha", "client_id": ASHA, "pin": PIN, "totp_secret": TOTP_SECRET},
                {"label": "mom", "client_id": MOM, "pin": MOM_PIN, "totp_secret": MOM_TOTP},
            ],
        });
        if let Value::Object(shared) = shared {
            m.extend(shared);
        }
    })
}

fn token_in(ws: &Workspace, label: &str) -> Option<String> {
    let path = ws.dir.path().join(format!("dhan_token.{label}.json"));
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["access_token"].as_str().map(String::from)
}

/// Mints seen per client, with when they were seen.
#[derive(Default)]
struct Mints(Vec<(Instant, &'static str)>, u64, u64);

impl Mints {
    fn sample(&mut self, sim: &DhanSim) {
        for (client, last) in [(ASHA, &mut self.1), (MOM, &mut self.2)] {
            let n = sim.mints_for(client);
            for _ in *last..n {
                self.0.push((Instant::now(), client));
            }
            *last = n;
        }
    }

    /// Two mints of one client closer than half a rotation: two hosts minted for one rotation.
    fn doubles(&self) -> usize {
        let spacing = Duration::from_secs((LIFETIME_S - REFRESH_BEFORE_S) / 2);
        [ASHA, MOM]
            .iter()
            .map(|c| {
                let at: Vec<Instant> = self.0.iter().filter(|(_, x)| x == c).map(|(t, _)| *t).collect();
                at.windows(2).filter(|w| w[1].duration_since(w[0]) < spacing).count()
            })
            .sum()
    }
}

#[tokio::test]
async fn a_family_fleet_has_one_lease_and_one_record_per_client_id() {
    let mom = SimClient { pin: MOM_PIN.into(), totp_secret: MOM_TOTP.into(), ..SimClient::new(MOM) };
    let sim = DhanSim::start(SimConfig {
        token_lifetime: Duration::from_secs(LIFETIME_S),
        mint_cooldown: Duration::from_millis(100),
        extra_clients: vec![mom],
        ..sim_config()
    })
    .await
    .expect("dhan sim");
    let tg = TelegramSim::start(BOT_TOKEN).await.expect("telegram sim");
    tg.add_chat(CHAT);
    let redis = RedisServer::start();
    let hosts = [host(&sim, &tg, &redis, "box-1"), host(&sim, &tg, &redis, "box-2")];
    let daemons: Vec<Daemon> = hosts.iter().map(Daemon::start).collect();

    // Three mints of each account (the first token and two rotations), sampled all along.
    let mut mints = Mints::default();
    let deadline = Instant::now() + Duration::from_secs(40);
    while sim.mints_for(ASHA) < 3 || sim.mints_for(MOM) < 3 {
        mints.sample(&sim);
        assert!(
            Instant::now() < deadline,
            "rotations did not happen: {} / {}",
            sim.mints_for(ASHA),
            sim.mints_for(MOM)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mints.doubles(), 0, "one mint per rotation per account, fleet-wide");

    // Both hosts hold each account's live token.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let agree = [("asha", ASHA), ("mom", MOM)].iter().all(|(label, client)| {
            let live = sim.active_token_for(client);
            live.is_some() && hosts.iter().all(|h| token_in(h, label) == live)
        });
        if agree {
            break;
        }
        assert!(Instant::now() < deadline, "the hosts never agreed on both accounts' live tokens");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // One lease and one record per client id; no token in Redis.
    let mut c = redis.raw();
    for client in [ASHA, MOM] {
        let holder: Option<String> =
            redis::cmd("GET").arg(format!("dhan-keeper:{{{client}}}:lease")).query(&mut c).expect("GET lease");
        assert!(holder.is_some_and(|h| h.starts_with("box-")), "{client} has its own lease");
        let generation: Option<u64> = redis::cmd("HGET")
            .arg(format!("dhan-keeper:{{{client}}}:token"))
            .arg("generation")
            .query(&mut c)
            .expect("HGET generation");
        assert!(generation.is_some_and(|g| g >= 1), "{client} has its own shared record");
    }
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).expect("KEYS");
    for key in &keys {
        let dump: Option<Vec<u8>> = redis::cmd("DUMP").arg(key).query(&mut c).expect("DUMP");
        let dump = String::from_utf8_lossy(&dump.unwrap_or_default()).to_string();
        for token in sim.all_tokens() {
            assert!(!dump.contains(&token), "a token in Redis key {key}");
        }
    }

    for d in daemons {
        let (code, _, log) = d.stop().await;
        assert_eq!(code, 0, "{log}");
        let tokens = sim.all_tokens();
        let extra: Vec<&str> = tokens.iter().map(String::as_str).chain([FLEET_KEY, MOM_PIN, MOM_TOTP]).collect();
        crate::daemon::assert_clean(&log, &extra);
    }
}
