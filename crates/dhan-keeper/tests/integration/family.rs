//! Three accounts in one `dhan-keeper run`: two automatic (asha, mom) and one consent (huf), one
//! simulator serving all three clients, one Telegram bot. Start-up, rotation, the consent login,
//! a failure in one account while the others rotate, every command with and without a label,
//! buttons, strangers, the HTTP endpoint per account, the CLI's `--account`, and a restart.

use std::time::Duration;

use dhan_sim::{DhanSim, SimClient, SimConfig, StaticIp, TelegramSim};
use serde_json::{Value, json};

use crate::accounts::{HUF, HUF_KEY, HUF_SECRET, MOM, MOM_PIN, MOM_TOTP};
use crate::daemon::{CHAT, Daemon, STRANGER, assert_clean, eventually, eventually_or_none, free_port, quick_keys};
use crate::helpers::*;

const ASHA: &str = "1000000001";
/// Mom's own chat: her alerts go there too; it may read about her account only.
const MOM_CHAT: i64 = 555_000_555;

struct Family {
    sim: DhanSim,
    tg: TelegramSim,
    ws: Workspace,
    http_port: u16,
}

impl Family {
    /// Tokens live `lifetime_secs`; automatic accounts rotate 5 s after each mint. `mom_pin` is
    /// the PIN her config holds (a wrong one makes her account fail).
    async fn new(lifetime_secs: u64, mom_pin: &str) -> Self {
        let accounts = json!([
            {"label": "asha", "client_id": ASHA, "pin": PIN, "totp_secret": TOTP_SECRET},
            {"label": "mom", "client_id": MOM, "pin": mom_pin, "totp_secret": MOM_TOTP,
             "bind_address": "127.0.0.2", "telegram_chat_id": MOM_CHAT.to_string()},
            {"label": "huf", "client_id": HUF, "api_key": HUF_KEY, "api_secret": HUF_SECRET},
        ]);
        Self::with_accounts(lifetime_secs, accounts).await
    }

    async fn with_accounts(lifetime_secs: u64, accounts: Value) -> Self {
        let mom = SimClient {
            pin: MOM_PIN.into(),
            totp_secret: MOM_TOTP.into(),
            static_ip: StaticIp { primary_ip: "127.0.0.2".into(), ..StaticIp::default() },
            ..SimClient::new(MOM)
        };
        let huf = SimClient { api_key: HUF_KEY.into(), api_secret: HUF_SECRET.into(), ..SimClient::new(HUF) };
        let sim = DhanSim::start(SimConfig {
            token_lifetime: Duration::from_secs(lifetime_secs),
            mint_cooldown: Duration::from_millis(100),
            extra_clients: vec![mom, huf],
            ..sim_config()
        })
        .await
        .expect("simulator");
        let tg = TelegramSim::start(BOT_TOKEN).await.expect("telegram sim");
        tg.add_chat(CHAT);
        tg.add_chat(MOM_CHAT);
        let http_port = free_port();
        let ws = Workspace::with(&sim, |m| {
            for key in ["client_id", "pin", "totp_secret", "api_key", "api_secret"] {
                m.remove(key);
            }
            m.extend(quick_keys(&tg, http_port));
            let shared = json!({
                "refresh_before": format!("{}s", lifetime_secs.saturating_sub(5).max(1)),
                "alert_before": "10s",
                "final_alert_before": "5s",
                "accounts": accounts,
            });
            if let Value::Object(shared) = shared {
                m.extend(shared);
            }
        });
        Self { sim, tg, ws, http_port }
    }

    fn start(&self) -> Daemon {
        // Exported for the CLI's convenience, it must not narrow `run` to one account.
        Daemon::start_with(&self.ws, &[], &[("DHAN_KEEPER_ACCOUNT", "asha")])
    }

    fn texts(&self, chat: i64) -> Vec<String> {
        self.tg.sent(chat).iter().map(|m| m["text"].as_str().unwrap_or_default().to_string()).collect()
    }

    fn count(&self, chat: i64, needle: &str) -> usize {
        self.texts(chat).iter().filter(|t| t.contains(needle)).count()
    }

    async fn wait_message(&self, chat: i64, needle: &str) -> Value {
        eventually(&format!("a message to {chat} containing {needle:?}"), || {
            self.tg.sent(chat).into_iter().find(|m| m["text"].as_str().is_some_and(|t| t.contains(needle)))
        })
        .await
    }

    /// Sends `text` from `chat`; the first new message to it containing `needle`, whole.
    async fn ask(&self, chat: i64, text: &str, needle: &str) -> Value {
        let before = self.tg.sent(chat).len();
        self.tg.inject_text(chat, chat, text);
        let found = eventually_or_none(Duration::from_secs(20), || {
            self.tg.sent(chat).into_iter().skip(before).find(|m| m["text"].as_str().is_some_and(|t| t.contains(needle)))
        })
        .await;
        found.unwrap_or_else(|| {
            panic!("no reply to {text:?} containing {needle:?}; got {:#?}", &self.texts(chat)[before..])
        })
    }

    /// Presses the button with `data` under `message`.
    async fn press(&self, message: &Value, data: &str) {
        let id = message["message_id"].as_i64().expect("message id");
        let buttons = message["reply_markup"].to_string();
        assert!(buttons.contains(&format!("\"{data}\"")), "no button {data:?} in {buttons}");
        self.tg.inject_callback(CHAT, CHAT, id, data).expect("the press is queued");
    }

    fn token_of(&self, label: &str) -> Option<Value> {
        let path = self.ws.dir.path().join(format!("dhan_token.{label}.json"));
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    async fn get(&self, path: &str, bearer: bool) -> (u16, String) {
        let mut req = reqwest::Client::new().get(format!("http://127.0.0.1:{}{path}", self.http_port));
        if bearer {
            req = req.bearer_auth(HTTP_TOKEN);
        }
        let resp = req.send().await.expect(path);
        (resp.status().as_u16(), resp.text().await.expect("body"))
    }

    /// The address Dhan lands on after the trader logs in through the link under `message`.
    fn login_through(&self, message: &Value) -> String {
        let link = message["reply_markup"]["inline_keyboard"][0]
            .as_array()
            .and_then(|b| b.iter().find_map(|b| b["url"].as_str()))
            .expect("a login link")
            .to_string();
        let id = url::Url::parse(&link)
            .expect("url")
            .query_pairs()
            .find(|(k, _)| k == "consentAppId")
            .map(|p| p.1.to_string());
        self.sim.login(&id.expect("consentAppId")).expect("simulated login")
    }

    /// The consent login the trader does for the HUF: open the link from `message`, log in,
    /// paste the address Dhan lands on into the admin chat.
    async fn consent_login(&self, message: &Value) {
        let callback = self.login_through(message);
        self.ask(CHAT, &callback, "Got a tokenId").await;
    }

    /// Stops the daemon and checks that no secret of any account reached its log or Telegram.
    async fn stop(&self, d: Daemon) -> String {
        let (code, _, log) = d.stop().await;
        assert_eq!(code, 0, "{log}");
        let mut secrets: Vec<String> = self.sim.all_tokens();
        secrets.extend([MOM_PIN, MOM_TOTP, HUF_SECRET].map(String::from));
        let extra: Vec<&str> = secrets.iter().map(String::as_str).collect();
        assert_clean(&log, &extra);
        for (_, m) in self.tg.all_sent() {
            assert_clean(&format!("{}\n{}", m["text"], m["reply_markup"]), &extra);
        }
        log
    }
}

#[tokio::test]
async fn three_accounts_start_rotate_and_answer_by_label() {
    let f = Family::new(60, MOM_PIN).await;
    let d = f.start();

    // Start-up: each automatic account mints its own token into its own file.
    for (label, client) in [("asha", ASHA), ("mom", MOM)] {
        let t = eventually(&format!("{label}'s token"), || f.token_of(label)).await;
        assert_eq!(t["client_id"], client, "{label}");
    }
    // The consent account asks for a login, its alert labelled; the tokenId is matched to it.
    let alert = f.wait_message(CHAT, "No valid Dhan token").await;
    assert!(alert["text"].as_str().unwrap_or_default().starts_with("huf · "), "{alert}");
    f.consent_login(&alert).await;
    let huf = eventually("the HUF's token", || f.token_of("huf")).await;
    assert_eq!((huf["client_id"].as_str(), huf["source"].as_str()), (Some(HUF), Some("consent")));
    f.wait_message(CHAT, "huf · ✅ New Dhan token (consent)").await;

    // Rotation, each account on its own schedule, each confirmation labelled.
    eventually("a scheduled rotation of asha and of mom", || {
        (f.sim.mints_for(ASHA) >= 2 && f.sim.mints_for(MOM) >= 2).then_some(())
    })
    .await;
    f.wait_message(CHAT, "asha · ✅ New Dhan token").await;
    f.wait_message(CHAT, "mom · ✅ New Dhan token").await;
    assert!(f.count(MOM_CHAT, "mom · ✅ New Dhan token") >= 1, "mom's own chat gets her alerts");
    assert_eq!(f.count(MOM_CHAT, "asha"), 0, "and nobody else's: {:?}", f.texts(MOM_CHAT));

    // /status: every account, one block each; with a label, that one in full.
    let all = f.ask(CHAT, "/status", "3 accounts").await;
    let all = all["text"].as_str().unwrap_or_default();
    for label in ["asha", "mom", "huf"] {
        assert!(all.contains(&format!("{label} · ")), "{label} missing: {all}");
    }
    let mom = f.ask(CHAT, "/status mom", "Static IP").await;
    let mom = mom["text"].as_str().unwrap_or_default().to_string();
    assert!(mom.starts_with("mom · "), "{mom}");
    assert!(mom.contains("127.0.0.2"), "mom's calls leave from her bind_address: {mom}");
    f.ask(CHAT, "/status nobody", "no account is labelled").await;

    // /refresh without a label asks which; the button acts on that account only.
    let question = f.ask(CHAT, "/refresh", "which account").await;
    let (asha_before, mom_before) = (f.sim.mints_for(ASHA), f.sim.mints_for(MOM));
    f.press(&question, "refresh:mom").await;
    eventually("mom's mint from the button", || (f.sim.mints_for(MOM) > mom_before).then_some(())).await;
    assert!(f.sim.mints_for(ASHA) <= asha_before + 1, "the button did not mint for asha beyond her schedule");
    let before = f.sim.mints_for(ASHA);
    // (Dhan's window may still be closed from asha's last scheduled mint: then it says so.)
    f.ask(CHAT, "/refresh asha", "asha · ").await;
    eventually("asha's mint from /refresh asha", || (f.sim.mints_for(ASHA) > before).then_some(())).await;
    let login = f.ask(CHAT, "/refresh huf", "huf · 🔗 Log in to Dhan").await;
    f.consent_login(&login).await;
    eventually("the HUF's second consent token", || {
        (f.count(CHAT, "huf · ✅ New Dhan token (consent)") == 2).then_some(())
    })
    .await;

    // /account: buttons without a label; with one, that account's funds.
    let question = f.ask(CHAT, "/account", "Show which account").await;
    let before = f.texts(CHAT).len();
    f.press(&question, "account:asha").await;
    eventually("asha's account", || {
        f.texts(CHAT).iter().skip(before).find(|t| t.starts_with("asha · ") && t.contains("Funds")).cloned()
    })
    .await;
    f.ask(CHAT, "/account mom", "mom · ").await;

    // /pause one account: the others keep rotating, it does not.
    f.ask(CHAT, "/pause mom", "mom · ⏸ Paused").await;
    let (mom_paused_at, asha_at) = (f.sim.mints_for(MOM), f.sim.mints_for(ASHA));
    eventually("asha's rotations while mom is paused", || (f.sim.mints_for(ASHA) >= asha_at + 2).then_some(())).await;
    assert_eq!(f.sim.mints_for(MOM), mom_paused_at, "a paused account does not rotate");
    f.ask(CHAT, "/resume", "All accounts").await;
    eventually("mom rotates again", || (f.sim.mints_for(MOM) > mom_paused_at).then_some(())).await;

    // A token minted elsewhere and pasted goes to the account its client id names.
    assert!(f.sim.mint_elsewhere_for(MOM));
    let pasted = f.sim.active_token_for(MOM).expect("mom's token minted elsewhere");
    f.ask(CHAT, &pasted, "mom · 🔑 Got an access token").await;
    eventually("mom's pasted token in her file", || {
        (f.token_of("mom")?["access_token"] == pasted.as_str()).then_some(())
    })
    .await;
    assert_ne!(f.token_of("asha").expect("asha")["access_token"], pasted.as_str());

    // /start and /help speak of every account.
    let start = f.ask(CHAT, "/start", "keeps 3 accounts").await;
    assert!(start["text"].as_str().unwrap_or_default().contains("huf (1000000003, consent)"), "{start}");
    f.ask(CHAT, "/help", "Accounts: asha, mom, huf").await;

    // Mom's chat reads her account only, and changes nothing.
    f.ask(MOM_CHAT, "/status", "mom · ").await;
    f.ask(MOM_CHAT, "/status asha", "This chat can ask about: mom.").await;
    f.ask(MOM_CHAT, "/refresh mom", "Only the admin chat").await;

    // Strangers get nothing, the admin hears once.
    f.tg.inject_text(STRANGER, STRANGER, "/status");
    f.wait_message(CHAT, "An unknown chat").await;
    assert!(f.tg.sent(STRANGER).is_empty());

    // Loopback HTTP: a token per label, health per account and overall, labelled metrics.
    let (code, body) = f.get("/token", true).await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("asha, mom, huf"), "{body}");
    for (label, client) in [("asha", ASHA), ("mom", MOM), ("huf", HUF)] {
        let (code, body) = f.get(&format!("/token/{label}"), true).await;
        assert_eq!(code, 200, "{label}: {body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["client_id"], client);
        let (code, _) = f.get(&format!("/healthz/{label}"), false).await;
        assert_eq!(code, 200, "{label}");
    }
    assert_eq!(f.get("/token/mom", false).await.0, 401, "the bearer is still required");
    let (code, health) = f.get("/healthz", false).await;
    assert_eq!(code, 200, "{health}");
    let health: Value = serde_json::from_str(&health).expect("json");
    assert_eq!(health["accounts"]["huf"]["token_valid"], true);
    let (_, metrics) = f.get("/metrics", false).await;
    for label in ["asha", "mom", "huf"] {
        assert!(
            metrics.contains(&format!("dhan_keeper_token_seconds_to_expiry{{account=\"{label}\"}}")),
            "{label}: {metrics}"
        );
    }
    assert_eq!(metrics.matches("# TYPE dhan_keeper_rotations_total").count(), 1, "{metrics}");

    // A restart keeps the accounts' tokens: each is served as it was kept, unless its own
    // schedule (a rotation every 5 s here) minted a newer one meanwhile. (Mom's pasted web token
    // is renewed on schedule, which the simulator does not count as a mint, so she is left out.)
    f.stop(d).await;
    let kept: Vec<(&str, &str, u64, Value)> = [("asha", ASHA), ("huf", HUF)]
        .into_iter()
        .map(|(label, client)| {
            let token = f.token_of(label).expect("a kept token")["access_token"].clone();
            (label, client, f.sim.mints_for(client), token)
        })
        .collect();
    let d = f.start();
    for (label, client, mints, token) in kept {
        let (code, body) = eventually_http(&f, &format!("/token/{label}")).await;
        assert_eq!(code, 200, "{label}: {body}");
        let served: Value = serde_json::from_str(&body).expect("json");
        if f.sim.mints_for(client) == mints {
            assert_eq!(served["access_token"], token, "the restarted daemon serves {label}'s token it had");
        }
    }
    f.stop(d).await;
}

/// `GET path` once the restarted daemon listens.
async fn eventually_http(f: &Family, path: &str) -> (u16, String) {
    for _ in 0..500 {
        let url = format!("http://127.0.0.1:{}{path}", f.http_port);
        if let Ok(resp) = reqwest::Client::new().get(url).bearer_auth(HTTP_TOKEN).send().await {
            let code = resp.status().as_u16();
            return (code, resp.text().await.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the daemon never listened on {path}");
}

#[tokio::test]
async fn a_failing_account_never_delays_the_others() {
    // Mom's config holds a wrong PIN: Dhan refuses her, and asha keeps rotating meanwhile. A
    // hook shared by both learns whose token it got.
    let f = Family::with_accounts(
        60,
        json!([
            {"label": "asha", "client_id": ASHA, "pin": PIN, "totp_secret": TOTP_SECRET,
             "on_refresh": ["sh", "-c", "echo \"$DHAN_KEEPER_ACCOUNT $DHAN_TOKEN_FILE\" >> hook.log"]},
            {"label": "mom", "client_id": MOM, "pin": "000000", "totp_secret": MOM_TOTP},
            {"label": "huf", "client_id": HUF, "api_key": HUF_KEY, "api_secret": HUF_SECRET},
        ]),
    )
    .await;
    let d = f.start();
    let stop = f.wait_message(CHAT, "mom · ").await;
    let stop = stop["text"].as_str().unwrap_or_default().to_string();
    assert!(stop.contains("🔐") || stop.contains("credentials"), "{stop}");
    let asha = f.sim.mints_for(ASHA);
    eventually("two rotations of asha while mom fails", || (f.sim.mints_for(ASHA) >= asha + 2).then_some(())).await;
    assert!(f.token_of("mom").is_none(), "mom has no token");
    let hook_log =
        eventually("the hook's record", || std::fs::read_to_string(f.ws.dir.path().join("hook.log")).ok()).await;
    let first = hook_log.lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("asha ") && first.ends_with("dhan_token.asha.json"), "{hook_log}");
    assert_eq!(f.sim.mints_for(MOM), 0);
    // Worst first: mom's block leads /status.
    let status = f.ask(CHAT, "/status", "3 accounts").await;
    let status = status["text"].as_str().unwrap_or_default().to_string();
    let pos = |l: &str| status.find(&format!("{l} · ")).unwrap_or(usize::MAX);
    assert!(pos("mom") < pos("asha"), "{status}");
    let (code, health) = f.get("/healthz", false).await;
    assert_eq!(code, 503, "{health}");
    assert!(health.contains("\"accounts_without_valid_token\":[\"mom\",\"huf\"]"), "{health}");
    assert_eq!(f.get("/healthz/asha", false).await.0, 200);
    f.stop(d).await;
}

#[tokio::test]
async fn the_cli_takes_an_account_label_and_lists_them_all() {
    let f = Family::new(3600, MOM_PIN).await;
    for label in ["asha", "mom"] {
        let run = f.ws.run(&["refresh", "--account", label]).await;
        assert_eq!(run.code, 0, "{label}: {}", run.all());
        run.assert_no_secrets();
    }
    let run = f.ws.run(&["token"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("3 accounts (asha, mom, huf)") && run.stderr.contains("--account"), "{}", run.stderr);
    let run = f.ws.run(&["token", "--account", "mom"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.stdout.trim(), f.token_of("mom").expect("mom")["access_token"].as_str().unwrap_or("?"));
    let run = f.ws.run(&["status"]).await;
    assert_eq!(run.code, 1, "huf has no token yet: {}", run.all());
    for label in ["asha", "mom", "huf"] {
        assert!(run.stdout.contains(&format!("Account     {label}")), "{}", run.stdout);
    }
    let run = f.ws.run(&["status", "--json"]).await;
    let v: Value = serde_json::from_str(&run.stdout).expect("status --json is one JSON document");
    assert_eq!(v[1]["account"], "mom");
    assert_eq!(v[1]["state"], "valid");
    let run = f.ws.run(&["totp", "--account", "nobody"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no account is labelled \"nobody\""), "{}", run.stderr);
    let run = f.ws.run(&["check", "--account", "mom"]).await;
    assert!(run.stdout.contains("127.0.0.2"), "{}", run.all());
}

#[tokio::test]
async fn a_token_id_that_could_be_anyones_is_held_until_the_admin_says_whose() {
    // Two consent accounts: a tokenId carries no client id, so the bot asks.
    let f = Family::with_accounts(
        3600,
        json!([
            {"label": "asha", "client_id": ASHA, "api_key": API_KEY, "api_secret": API_SECRET},
            {"label": "huf", "client_id": HUF, "api_key": HUF_KEY, "api_secret": HUF_SECRET},
        ]),
    )
    .await;
    let d = f.start();
    let alert = f.wait_message(CHAT, "huf · ⛔ No valid Dhan token").await;
    let callback = f.login_through(&alert);
    let question = f.ask(CHAT, &callback, "Which account is it for?").await;
    assert!(f.token_of("huf").is_none() && f.token_of("asha").is_none(), "nothing stored while it is held");
    f.press(&question, "paste:huf:1").await;
    let huf = eventually("the HUF's token from the held paste", || f.token_of("huf")).await;
    assert_eq!(huf["client_id"], HUF);
    assert!(f.token_of("asha").is_none());
    // A second press finds nothing held: the paste was used once.
    f.press(&question, "paste:asha:1").await;
    f.wait_message(CHAT, "no longer kept").await;
    // Asha's login link from her alert is still outstanding, so after "/refresh huf" a tokenId
    // could still be either's: the bot asks again rather than guess (a wrong guess spends it).
    let login = f.ask(CHAT, "/refresh huf", "huf · 🔗 Log in to Dhan").await;
    let callback = f.login_through(&login);
    let second = f.ask(CHAT, &callback, "Which account is it for?").await;
    // A button under the first question never applies this newer paste.
    f.press(&question, "paste:huf:1").await;
    eventually("the old button's refusal", || (f.count(CHAT, "no longer kept") == 2).then_some(())).await;
    assert_eq!(f.count(CHAT, "huf · ✅ New Dhan token (consent)"), 1);
    f.press(&second, "paste:huf:2").await;
    eventually("the HUF's second token", || (f.count(CHAT, "huf · ✅ New Dhan token (consent)") == 2).then_some(()))
        .await;
    f.stop(d).await;
}
