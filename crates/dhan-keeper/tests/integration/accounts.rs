//! Several Dhan accounts in one config (`accounts`), and `bind_address`: the source address
//! every Dhan call of an account leaves from, as the simulator's socket sees it.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dhan_keeper::clock::{Clock, SystemClock};
use dhan_keeper::config::{Config, Mode};
use dhan_keeper::secret::Secret;
use dhan_sim::{DhanSim, SimClient, SimConfig, StaticIp};
use serde_json::{Value, json};

use crate::helpers::*;

pub const MOM: &str = "1000000002";
pub const HUF: &str = "1000000003";
pub const MOM_PIN: &str = "246813";
pub const MOM_TOTP: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
pub const HUF_KEY: &str = "huf-apikey-55aa";
pub const HUF_SECRET: &str = "huf-apisecret-77bbcc";

/// One simulator serving three clients: the trader (automatic), mom (automatic) and the HUF
/// (consent), each with its own static IP.
async fn family_sim() -> DhanSim {
    let mom = SimClient {
        pin: MOM_PIN.into(),
        totp_secret: MOM_TOTP.into(),
        static_ip: StaticIp { primary_ip: "127.0.0.2".into(), ..StaticIp::default() },
        ..SimClient::new(MOM)
    };
    let huf = SimClient {
        api_key: HUF_KEY.into(),
        api_secret: HUF_SECRET.into(),
        static_ip: StaticIp { primary_ip: "127.0.0.3".into(), ..StaticIp::default() },
        ..SimClient::new(HUF)
    };
    DhanSim::start(SimConfig { extra_clients: vec![mom, huf], ..sim_config() }).await.expect("simulator starts")
}

/// The family config: shared Telegram and HTTP at the top, three accounts.
fn family_config(sim: &DhanSim, dir: &Path) -> Value {
    let mom_pin_file = dir.join("mom.pin");
    write_private(&mom_pin_file, &format!("{MOM_PIN}\n"));
    json!({
        "telegram_bot_token": BOT_TOKEN,
        "telegram_chat_id": "123456789",
        "telegram_api_url": "http://127.0.0.1:9",
        "http_listen": "127.0.0.1:0",
        "http_token": HTTP_TOKEN,
        "dhan_auth_url": sim.url(),
        "dhan_api_url": sim.url(),
        "refresh_before": "40m",
        "accounts": [
            {"label": "asha", "client_id": "1000000001", "pin": PIN, "totp_secret": TOTP_SECRET},
            {"label": "mom", "client_id": MOM, "pin_file": mom_pin_file, "totp_secret": MOM_TOTP,
             "bind_address": "127.0.0.2", "refresh_before": "1h", "telegram_chat_id": "555"},
            {"label": "huf", "client_id": HUF, "api_key": HUF_KEY, "api_secret": HUF_SECRET,
             "bind_address": "127.0.0.3", "token_file": "tokens/huf.json", "on_refresh": ["/bin/true"]},
        ],
    })
}

fn write_config(dir: &Path, cfg: &Value) -> std::path::PathBuf {
    let path = dir.join("dhan_config.json");
    write_private(&path, &serde_json::to_string_pretty(cfg).expect("json"));
    path
}

#[tokio::test]
async fn a_family_config_becomes_one_complete_config_per_account() {
    let sim = family_sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), &family_config(&sim, dir.path()));
    // An environment variable of a shared key is a shared default; an account's own key wins.
    let env = |k: &str| (k == "DHAN_KEEPER_ALERT_BEFORE").then(|| "3h".to_string());
    let accounts = Config::load_accounts_with_env(Some(path.clone()), &env).expect("the family config loads");
    assert!(accounts.listed);
    assert_eq!(accounts.labels(), ["asha", "mom", "huf"]);
    assert!(accounts.warnings.is_empty(), "{:?}", accounts.warnings);
    let [asha, mom, huf] = [&accounts.list[0], &accounts.list[1], &accounts.list[2]];
    assert_eq!((asha.config.client_id.as_str(), asha.config.mode()), ("1000000001", Mode::Automatic));
    assert_eq!((mom.config.client_id.as_str(), mom.config.mode()), (MOM, Mode::Automatic));
    assert_eq!((huf.config.client_id.as_str(), huf.config.mode()), (HUF, Mode::Consent));
    assert_eq!(mom.config.pin.as_ref().map(Secret::expose), Some(MOM_PIN), "the account's pin_file was read");
    assert_eq!(asha.config.token_file, dir.path().join("dhan_token.asha.json"));
    assert_eq!(mom.config.token_file, dir.path().join("dhan_token.mom.json"));
    assert_eq!(huf.config.token_file, dir.path().join("tokens/huf.json"));
    assert_eq!(asha.config.refresh_before, Duration::from_secs(40 * 60), "the shared default");
    assert_eq!(mom.config.refresh_before, Duration::from_secs(3600), "the account's own value");
    assert_eq!(huf.config.alert_before, Duration::from_secs(3 * 3600), "DHAN_KEEPER_ALERT_BEFORE");
    assert_eq!(huf.config.on_refresh.as_deref(), Some(&["/bin/true".to_string()][..]));
    assert_eq!(asha.config.on_refresh, None);
    assert_eq!(mom.config.bind_address, Some("127.0.0.2".parse::<IpAddr>().expect("ip")));
    assert_eq!(asha.config.bind_address, None);
    // Telegram and HTTP are shared; mom's chat gets her alerts as well, without admin rights.
    for a in &accounts.list {
        assert_eq!(a.config.telegram_chat_id, Some(123_456_789), "{}", a.label);
        assert_eq!(a.config.admin_chat_id, Some(123_456_789), "{}", a.label);
        assert_eq!(a.config.telegram_bot_token.as_ref().map(Secret::expose), Some(BOT_TOKEN));
        assert_eq!(a.config.path.as_deref(), Some(path.as_path()));
        assert!(Arc::ptr_eq(&a.config.calendar, &asha.config.calendar), "one calendar for all");
    }
    assert_eq!((asha.alert_chat_id, mom.alert_chat_id, huf.alert_chat_id), (None, Some(555), None));
    // The lock files follow the token files, so they differ too.
    assert_ne!(asha.config.lock_file(), mom.config.lock_file());
}

#[tokio::test]
async fn a_classic_config_is_one_account_labelled_by_its_client_id() {
    let sim = sim().await;
    let ws = Workspace::new(&sim);
    let one = Config::load_with_env(Some(ws.config_path()), &|_| None).expect("loads");
    let accounts = Config::load_accounts_with_env(Some(ws.config_path()), &|_| None).expect("loads");
    assert!(!accounts.listed);
    assert_eq!(accounts.labels(), ["1000000001"]);
    let only = &accounts.list[0].config;
    assert_eq!((&only.token_file, &only.client_id, only.mode()), (&one.token_file, &one.client_id, one.mode()));
    assert_eq!(only.token_file, ws.dir.path().join("dhan_token.json"), "the classic token file keeps its name");
}

#[tokio::test]
async fn the_one_account_commands_take_a_single_entry_list_and_refuse_several() {
    let sim = family_sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = family_config(&sim, dir.path());
    let path = write_config(dir.path(), &cfg);
    let err = Config::load_with_env(Some(path.clone()), &|_| None).expect_err("three accounts");
    assert!(err.to_string().contains("it lists 3 accounts (asha, mom, huf)"), "{err}");
    if let Some(list) = cfg["accounts"].as_array_mut() {
        list.truncate(1);
    }
    let path = write_config(dir.path(), &cfg);
    let one = Config::load_with_env(Some(path), &|_| None).expect("one account in a list");
    assert_eq!(
        (one.client_id.as_str(), one.token_file.clone()),
        ("1000000001", dir.path().join("dhan_token.asha.json"))
    );
}

#[tokio::test]
async fn every_problem_in_every_account_is_reported_at_once_naming_the_account() {
    let sim = family_sim().await;
    let ws = Workspace::new(&sim);
    let mut cfg = family_config(&sim, ws.dir.path());
    cfg["http_listen"] = json!("0.0.0.0:8080");
    cfg["accounts"] = json!([
        {"label": "asha", "client_id": "1000000001", "pin": PIN, "totp_secret": TOTP_SECRET},
        {"label": "Mom", "client_id": MOM, "pin": "12", "totp_secret": MOM_TOTP, "http_token": HTTP_TOKEN},
        {"label": "huf", "client_id": HUF, "api_key": HUF_KEY, "bind_address": "127.0.0.1:80"},
        {"label": "asha", "client_id": "1000000004", "pin": PIN, "totp_secret": TOTP_SECRET,
         "token_file": "dhan_token.asha.json", "refersh_before": "1h"},
        "not an object",
    ]);
    ws.write_config(&serde_json::to_string_pretty(&cfg).expect("json"));
    let run = ws.run(&["accounts"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    let expected = [
        "has 9 problems",
        // A shared key's problem once, not once per account.
        "  - `http_listen` must be a loopback address",
        "accounts[1]: `label` must be 1 to 16 characters of a-z, 0-9, `_` and `-` (like \"mom\" or \"huf-2\"); got \"Mom\"",
        "accounts[1]: `http_token` is shared by every account: set it at the top level",
        "accounts[1]: `pin` must be your Dhan login PIN",
        "accounts[2] (label \"huf\"): `bind_address` must be one IP address of this machine, without a port",
        "accounts[2] (label \"huf\"): the consent flow needs both `api_key` and `api_secret`",
        "accounts[3] (label \"asha\"): `label` \"asha\" is already the label of accounts[0]",
        "accounts[3] (label \"asha\"): `token_file` ",
        "accounts[4] must be an object",
    ];
    for e in expected {
        assert!(run.stderr.contains(e), "missing {e:?} in:\n{}", run.stderr);
    }
    assert_eq!(run.stderr.matches("`http_listen` must be").count(), 1, "{}", run.stderr);
    run.assert_no_secrets();
    assert!(!run.all().contains(MOM_PIN) && !run.all().contains(HUF_KEY), "{}", run.all());
}

#[tokio::test]
async fn credentials_at_the_top_level_of_a_family_config_are_refused_even_from_the_environment() {
    let sim = family_sim().await;
    let ws = Workspace::new(&sim);
    let mut cfg = family_config(&sim, ws.dir.path());
    cfg["token_file"] = json!("shared.json");
    ws.write_config(&serde_json::to_string_pretty(&cfg).expect("json"));
    let run = ws.run_env(&["accounts"], &[("DHAN_KEEPER_PIN", PIN)]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("`pin` is set at the top level (in the file or as DHAN_KEEPER_PIN), but with `accounts` it belongs to one account"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("`token_file` is set at the top level"), "{}", run.stderr);
    run.assert_no_secrets();
}

#[tokio::test]
async fn the_accounts_command_lists_each_account_and_says_what_looks_wrong() {
    let sim = family_sim().await;
    let ws = Workspace::new(&sim);
    let mut cfg = family_config(&sim, ws.dir.path());
    cfg["accounts"][2]["client_id"] = json!(MOM);
    cfg["accounts"][2]["refersh_before"] = json!("1h");
    ws.write_config(&serde_json::to_string_pretty(&cfg).expect("json"));
    let run = ws.run(&["accounts"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].ends_with(": 3 accounts"), "{}", run.stdout);
    assert!(lines[1].starts_with("asha              client 1000000001  automatic  token "), "{}", run.stdout);
    assert!(lines[2].contains("client 1000000002  automatic") && lines[2].contains("from 127.0.0.2"), "{}", run.stdout);
    assert!(lines[2].ends_with("alerts also to chat 555"), "{}", run.stdout);
    assert!(lines[3].contains("consent  token ") && lines[3].contains("tokens/huf.json"), "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "warning: accounts[2] (label \"huf\"): unknown key `refersh_before` is ignored (did you mean `refresh_before`?)"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "warning: accounts[2] (label \"huf\"): `client_id` 1000000002 is also the client id of accounts[1]"
        ),
        "{}",
        run.stdout
    );
    run.assert_no_secrets();
}

/// What the simulator says about the caller's address, asked with `cfg`'s client.
async fn seen(cfg: &Config, token: Secret) -> dhan_keeper::dhan::IpStatus {
    dhan_keeper::cli::dhan_client(cfg).expect("client").ip_status(&token).await.expect("getIP")
}

/// Mints for `cfg`'s account with the library's client, as the daemon will.
async fn mint(cfg: &Config) -> Secret {
    let client = dhan_keeper::cli::dhan_client(cfg).expect("client");
    let (Some(pin), Some(totp)) = (&cfg.pin, &cfg.totp_secret) else { panic!("automatic account") };
    let code = totp.code_at(SystemClock.now());
    client.generate_access_token(pin, &code.digits).await.expect("minted").access_token
}

#[tokio::test]
async fn each_account_reaches_one_simulator_from_its_own_bind_address() {
    let sim = family_sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), &family_config(&sim, dir.path()));
    let accounts = Config::load_accounts_with_env(Some(path), &|_| None).expect("loads");
    let (asha, mom) = (&accounts.list[0].config, &accounts.list[1].config);
    let asha_token = mint(asha).await;
    let mom_token = mint(mom).await;
    assert_eq!((sim.mints_for("1000000001"), sim.mints_for(MOM)), (1, 1));
    let ip = seen(mom, mom_token).await;
    assert_eq!(ip.detected_ip.as_deref(), Some("127.0.0.2"), "the simulator saw mom's calls come from 127.0.0.2");
    assert_eq!(ip.orders_allowed, Some(true), "127.0.0.2 is mom's static IP");
    let ip = seen(asha, asha_token).await;
    assert_eq!(ip.detected_ip.as_deref(), Some("127.0.0.1"), "no bind_address: the system's choice");
}

#[tokio::test]
async fn check_shows_the_bind_address_and_the_static_ip_dhan_sees() {
    let sim = sim().await;
    sim.set_account(dhan_sim::Account {
        static_ip: StaticIp { primary_ip: "127.0.0.2".into(), ..StaticIp::default() },
        ..dhan_sim::Account::default()
    });
    let ws = Workspace::with(&sim, |c| drop(c.insert("bind_address".into(), "127.0.0.2".into())));
    let refresh = ws.run(&["refresh"]).await;
    assert_eq!(refresh.code, 0, "{}", refresh.all());
    let run = ws.run(&["check"]).await;
    assert!(run.stdout.contains("✅ Bind        calls to Dhan leave from 127.0.0.2"), "{}", run.stdout);
    assert!(
        run.stdout.contains("✅ Static IP   127.0.0.2 is a registered static IP; orders allowed"),
        "{}",
        run.stdout
    );
    run.assert_no_secrets();
}

#[tokio::test]
async fn an_address_this_machine_does_not_have_is_a_quick_clear_error() {
    let sim = sim().await;
    // 192.0.2.0/24 is reserved for documentation: no machine here has it.
    let ws = Workspace::with(&sim, |c| drop(c.insert("bind_address".into(), "192.0.2.1".into())));
    let started = Instant::now();
    let run = ws.run(&["check"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout.contains("❌ Bind        bind_address 192.0.2.1 is not an address of this machine"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("does not have the address 192.0.2.1 that `bind_address` asks calls to leave from"),
        "{}",
        run.stdout
    );
    let refresh = ws.run(&["refresh"]).await;
    assert_eq!(refresh.code, 1, "{}", refresh.all());
    assert!(refresh.stderr.contains("does not have the address 192.0.2.1 that `bind_address`"), "{}", refresh.all());
    assert!(started.elapsed() < Duration::from_secs(20), "no hang: {:?}", started.elapsed());
    assert_eq!(sim.total_calls(), 0, "nothing left from another address");
}

#[tokio::test]
async fn a_malformed_bind_address_is_a_config_error() {
    let sim = sim().await;
    for bad in ["127.0.0.1:80", "0.0.0.0", "my-server", "224.0.0.1"] {
        let ws = Workspace::with(&sim, |c| drop(c.insert("bind_address".into(), bad.into())));
        let run = ws.run(&["check"]).await;
        assert_eq!(run.code, 2, "{bad}: {}", run.all());
        assert!(run.stderr.contains("`bind_address` must be one IP address of this machine"), "{bad}: {}", run.stderr);
    }
}

#[tokio::test]
async fn a_key_written_twice_inside_an_account_is_refused() {
    let sim = family_sim().await;
    let ws = Workspace::new(&sim);
    let cfg = family_config(&sim, ws.dir.path());
    let text = serde_json::to_string_pretty(&cfg).expect("json");
    // Serialized maps cannot hold a key twice: write the second PIN into the text.
    let doubled =
        text.replacen(&format!("\"pin\": \"{PIN}\""), &format!("\"pin\": \"{PIN}\", \"pin\": \"{MOM_PIN}\""), 1);
    assert_ne!(doubled, text);
    ws.write_config(&doubled);
    let run = ws.run(&["accounts"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("accounts[0]: `pin` appears more than once"), "{}", run.stderr);
    run.assert_no_secrets();
    assert!(!run.all().contains(MOM_PIN));
}
