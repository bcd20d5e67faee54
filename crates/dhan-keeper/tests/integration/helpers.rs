//! Shared set-up: a simulator, a config pointing at it, and a way to run the real binary.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use dhan_keeper::dhan::DhanClient;
use dhan_sim::{DhanSim, SimConfig};
use serde_json::{Value, json};

/// Distinctive secrets: if any of these shows up in output, something leaked.
pub const PIN: &str = "918273";
pub const TOTP_SECRET: &str = "KRUGS4ZANFZSAYJAONSWG4TFOQQHI33UOBZWKY3S";
pub const API_KEY: &str = "apikey-7c1f0e5b9a";
pub const API_SECRET: &str = "apisecret-Zq8xWv3LkP0mNn5";
pub const BOT_TOKEN: &str = "7000000001:AAHsecretBotTokenValue_qwertyuiop123";
pub const HTTP_TOKEN: &str = "httptoken-4f9d2c7b1e8a6f3d";
pub const ALL_SECRETS: [&str; 5] = [PIN, TOTP_SECRET, API_SECRET, BOT_TOKEN, HTTP_TOKEN];

/// The simulated account, using the distinctive secrets.
pub fn sim_config() -> SimConfig {
    SimConfig {
        pin: PIN.into(),
        totp_secret: TOTP_SECRET.into(),
        api_key: API_KEY.into(),
        api_secret: API_SECRET.into(),
        ..SimConfig::default()
    }
}

pub async fn sim() -> DhanSim {
    DhanSim::start(sim_config()).await.expect("simulator starts")
}

pub fn client(sim: &DhanSim) -> DhanClient {
    client_with_timeout(sim, Duration::from_secs(5))
}

pub fn client_with_timeout(sim: &DhanSim, timeout: Duration) -> DhanClient {
    let url = url::Url::parse(&sim.url()).expect("sim url");
    DhanClient::new(url.clone(), url, "1000000001", timeout).expect("client")
}

/// A temp dir holding `dhan_config.json` (mode 0600) for `sim`.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new(sim: &DhanSim) -> Self {
        Self::with(sim, |_| {})
    }

    pub fn with(sim: &DhanSim, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = json!({
            "client_id": "1000000001",
            "api_key": API_KEY,
            "api_secret": API_SECRET,
            "totp_secret": TOTP_SECRET,
            "pin": PIN,
            "telegram_bot_token": BOT_TOKEN,
            "telegram_chat_id": "123456789",
            "http_listen": "127.0.0.1:0",
            "http_token": HTTP_TOKEN,
            "dhan_auth_url": sim.url(),
            "dhan_api_url": sim.url(),
            "telegram_api_url": "http://127.0.0.1:9",
        });
        if let Some(map) = cfg.as_object_mut() {
            edit(map);
        }
        let ws = Self { dir };
        ws.write_config(&serde_json::to_string_pretty(&cfg).expect("json"));
        ws
    }

    pub fn write_config(&self, text: &str) {
        write_private(&self.config_path(), text);
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("dhan_config.json")
    }

    pub fn token_path(&self) -> PathBuf {
        self.dir.path().join("dhan_token.json")
    }

    pub fn token_json(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.token_path()).expect("token file exists"))
            .expect("token file is JSON")
    }

    /// Runs `dhan-keeper ARGS --config <this config>` with a clean environment.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[]).await
    }

    pub async fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_dhan-keeper"));
        cmd.args(args).arg("--config").arg(self.config_path()).current_dir(self.dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("DHAN_KEEPER_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .expect("dhan-keeper finished within 60 s")
            .expect("dhan-keeper ran");
        Run::from(out)
    }
}

pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Asserts that no configured secret appears in stdout or stderr.
    pub fn assert_no_secrets(&self) {
        for s in ALL_SECRETS {
            assert!(!self.all().contains(s), "secret {s:?} leaked in:\n{}", self.all());
        }
    }
}
