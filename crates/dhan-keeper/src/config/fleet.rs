//! The fleet keys: `redis_url`, `node_name` and `fleet_key`, read into one [`FleetConfig`].
//!
//! They live in one optional struct rather than three loose fields because they only mean
//! something together: without `redis_url` the keeper is a single host and nothing changes, and
//! with it a key to seal the shared token is required (Redis must never hold a usable token).
//! Both `redis_url` (it may carry a password) and `fleet_key` are secrets: no message here ever
//! quotes them.

use std::time::Duration;

use serde_json::{Map, Value};
use url::Url;

use crate::fleet::{FleetKey, NodeName, RedisUrl};

/// The validated fleet settings; present only when `redis_url` is set.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Where the keepers coordinate (`redis://` or `rediss://`), a secret.
    pub redis_url: RedisUrl,
    /// This keeper's name in the fleet (default: the host name).
    pub node_name: NodeName,
    /// The shared key that seals the token before it goes to Redis.
    pub fleet_key: FleetKey,
    /// The lease's time to live (`fleet_lease`, default 30 s): a dead leader is replaced within
    /// it plus one renewal; renewal every third of it, a tenth of it as the safety margin.
    pub lease: Duration,
}

impl FleetConfig {
    /// The secret texts these keys hold (the Redis URL and its password, every written form of
    /// the key), for the scrubbers that blank secrets out of a hook's output.
    pub fn secret_texts(&self) -> Vec<String> {
        let mut out = vec![self.redis_url.expose().to_string()];
        out.extend(self.redis_url.password_forms());
        out.extend(self.fleet_key.text_forms());
        out.retain(|s| !s.is_empty());
        out
    }
}

/// Reads the fleet keys. Problems and warnings are appended; `None` when `redis_url` is unset
/// (the other two keys are then ignored with a warning) or when a key is bad.
pub(super) fn read(
    map: &Map<String, Value>,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<FleetConfig> {
    let raw_url = text(map, "redis_url", problems);
    let raw_node = text(map, "node_name", problems);
    let raw_key = text(map, "fleet_key", problems);
    let Some(raw_url) = raw_url else {
        for (key, set) in [("node_name", raw_node.is_some()), ("fleet_key", raw_key.is_some())] {
            if set {
                warnings.push(format!("`{key}` is set without `redis_url`, so it is ignored (this keeper runs alone)"));
            }
        }
        return None;
    };
    let redis_url = read_redis_url(&raw_url, problems, warnings);
    let node_name = read_node_name(raw_node, problems);
    let fleet_key = read_fleet_key(raw_key, problems);
    Some(FleetConfig { redis_url: redis_url?, node_name: node_name?, fleet_key: fleet_key?, lease: DEFAULT_LEASE })
}

/// The lease's default time to live: longer than a mint request may take (`dhan_timeout`, 15 s),
/// short enough that a dead leader is replaced well inside Dhan's 2-minute window.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// Reads `fleet_lease` into `fleet`. A leader may start a mint only if it can end inside its
/// lease, and right before a renewal a bit over half of the lease is left, so the lease must be
/// at least twice `dhan_timeout` or the leader could never mint. A dead leader is noticed only
/// when its lease runs out, so the lease must also be well inside `refresh_before` (at most
/// half of it), or a token could expire before anyone may rotate it.
pub(super) fn with_lease(
    r: &mut super::validate::Reader<'_>,
    fleet: Option<FleetConfig>,
    dhan_timeout: Duration,
    refresh_before: Duration,
) -> Option<FleetConfig> {
    let lease = r.duration("fleet_lease", DEFAULT_LEASE);
    if fleet.is_some() && lease > refresh_before / 2 {
        r.problem(format!(
            "`fleet_lease` ({}) must be at most half of `refresh_before` ({}): a dead leader is replaced only when its \
             lease runs out, and the token must not expire before then",
            humantime::format_duration(lease),
            humantime::format_duration(refresh_before)
        ));
    }
    if fleet.is_some() && lease < dhan_timeout.saturating_mul(2) {
        r.problem(format!(
            "`fleet_lease` ({}) must be at least twice `dhan_timeout` ({}): the leader starts a mint only when it can \
             finish inside its lease",
            humantime::format_duration(lease),
            humantime::format_duration(dhan_timeout)
        ));
    }
    fleet.map(|f| FleetConfig { lease, ..f })
}

/// Why `dhan-keeper refresh` refuses in a fleet.
pub const CLI_REFRESH_IN_A_FLEET: &str = "this keeper is part of a fleet (`redis_url` is set): a mint here, \
     outside the fleet's lease, would kill the token every other host uses without telling them. Send /refresh \
     to the Telegram bot instead (the leader mints and shares the token), or see `dhan-keeper fleet status`";

impl super::Config {
    /// Whether this config can obtain a token by itself: `pin` + `totp_secret`, or `api_key` +
    /// `api_secret`. Without them a config is valid only with `redis_url`: a follower only, for a
    /// trading host that must not hold the PIN.
    pub fn has_credentials(&self) -> bool {
        (self.pin.is_some() && self.totp_secret.is_some()) || (self.api_key.is_some() && self.api_secret.is_some())
    }
}

/// A key's trimmed text; unset, null and blank all mean "not set", anything but a string is a
/// problem (that names the key, never the value: it may be a secret).
fn text(map: &Map<String, Value>, key: &str, problems: &mut Vec<String>) -> Option<String> {
    match map.get(key)? {
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.trim().to_string()),
        Value::Null => None,
        _ => {
            problems.push(format!("`{key}` must be a string"));
            None
        }
    }
}

/// The parsed `redis_url`, with a warning when it crosses the network in plain text.
fn read_redis_url(raw: &str, problems: &mut Vec<String>, warnings: &mut Vec<String>) -> Option<RedisUrl> {
    match RedisUrl::parse(raw) {
        Ok(u) => {
            if let Some(w) = plain_text_warning(u.url()) {
                warnings.push(w);
            }
            Some(u)
        }
        Err(why) => {
            problems.push(format!("`redis_url` {why}"));
            None
        }
    }
}

/// The parsed `node_name`, or the host name when it is unset (each keeper needs a name).
fn read_node_name(raw: Option<String>, problems: &mut Vec<String>) -> Option<NodeName> {
    match raw {
        Some(n) => NodeName::parse(&n).map_err(|why| problems.push(format!("`node_name` {why}"))).ok(),
        None => match NodeName::from_host() {
            Ok(n) => Some(n),
            Err(why) => {
                problems.push(format!("`node_name` is not set and the host name cannot stand in for it: {why}"));
                None
            }
        },
    }
}

/// The parsed `fleet_key`; missing is a problem with the fix, since Redis must never hold a
/// usable token.
fn read_fleet_key(raw: Option<String>, problems: &mut Vec<String>) -> Option<FleetKey> {
    match raw {
        Some(k) => FleetKey::parse(&k).map_err(|why| problems.push(format!("`fleet_key` {why}"))).ok(),
        None => {
            problems.push(
                "`fleet_key` is missing: with `redis_url` set, the keepers seal the token with a shared key so Redis \
                 never holds a usable token; generate one with `openssl rand -hex 32` and give every keeper the same \
                 value (or `fleet_key_file`)"
                    .into(),
            );
            None
        }
    }
}

/// `redis://` to another machine sends the Redis password (not the token, which is sealed) in
/// the clear: worth a warning, not a refusal, since many Redis servers live on a private network.
fn plain_text_warning(u: &Url) -> Option<String> {
    let local = match u.host() {
        // `redis://` is not a "special" scheme to the URL parser, so an IP comes back as a domain.
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => true,
    };
    (u.scheme() == "redis" && !local).then(|| {
        format!(
            "`redis_url` uses plain redis:// to {}: the token is sealed with `fleet_key`, but the Redis password and \
             the lease travel unencrypted; prefer rediss:// beyond a private network",
            u.host_str().unwrap_or_default()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn run(pairs: &[(&str, &str)]) -> (Option<FleetConfig>, Vec<String>, Vec<String>) {
        let map: Map<String, Value> =
            pairs.iter().map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string()))).collect();
        let (mut problems, mut warnings) = (Vec::new(), Vec::new());
        let cfg = read(&map, &mut problems, &mut warnings);
        (cfg, problems, warnings)
    }

    #[test]
    fn without_redis_url_nothing_changes() {
        let (cfg, problems, warnings) = run(&[]);
        assert!(cfg.is_none() && problems.is_empty() && warnings.is_empty());
        let (cfg, problems, warnings) = run(&[("fleet_key", KEY), ("node_name", "a")]);
        assert!(cfg.is_none() && problems.is_empty());
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(!warnings.iter().any(|w| w.contains(KEY)), "a warning must not echo the key");
    }

    #[test]
    fn a_full_fleet_config_is_read() {
        let (cfg, problems, warnings) =
            run(&[("redis_url", "redis://:pw-123@127.0.0.1:6379/2"), ("node_name", "box-1"), ("fleet_key", KEY)]);
        assert!(problems.is_empty() && warnings.is_empty(), "{problems:?} {warnings:?}");
        let cfg = cfg.expect("config");
        assert_eq!(cfg.node_name.as_str(), "box-1");
        assert!(!format!("{cfg:?}").contains("pw-123"), "Debug must not show the password");
        assert!(!format!("{cfg:?}").contains("00112233"), "Debug must not show the key");
        let texts = cfg.secret_texts();
        assert!(texts.contains(&"pw-123".to_string()) && texts.contains(&KEY.to_string()), "{}", texts.len());
    }

    #[test]
    fn redis_url_without_a_key_is_refused_with_the_fix() {
        let (cfg, problems, _) = run(&[("redis_url", "redis://127.0.0.1:6379")]);
        assert!(cfg.is_none());
        assert!(problems[0].starts_with("`fleet_key` is missing") && problems[0].contains("openssl rand -hex 32"));
    }

    #[test]
    fn bad_values_name_the_key_and_never_echo_secrets() {
        let table = [
            (("redis_url", "http://user:hunter2@10.0.0.1"), "`redis_url`"),
            (("redis_url", "not a url hunter2"), "`redis_url`"),
            (("fleet_key", "hunter2hunter2"), "`fleet_key`"),
            (("node_name", "bad name!"), "`node_name`"),
        ];
        for ((key, value), want) in table {
            let mut pairs = vec![("redis_url", "redis://127.0.0.1"), ("fleet_key", KEY)];
            pairs.retain(|(k, _)| *k != key);
            pairs.push((key, value));
            let (cfg, problems, _) = run(&pairs);
            assert!(cfg.is_none(), "{key}={value}");
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].starts_with(want), "{problems:?}");
            assert!(!problems[0].contains("hunter2"), "secret echoed: {problems:?}");
        }
    }

    fn load(extra: serde_json::Value) -> Result<super::super::Config, String> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("dhan_config.json");
        let mut cfg = serde_json::json!({"client_id": "1000000001"});
        if let (Some(m), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        std::fs::write(&path, cfg.to_string()).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
        super::super::Config::load_with_env(Some(path), &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn no_credentials_is_a_follower_only_with_redis_and_an_error_without() {
        let fleet = serde_json::json!({"redis_url": "redis://127.0.0.1:6379", "fleet_key": KEY, "node_name": "box-3"});
        let cfg = load(fleet.clone()).expect("a follower-only config is valid");
        assert!(!cfg.has_credentials() && cfg.fleet.is_some());
        let e = load(serde_json::json!({})).expect_err("alone it needs credentials");
        assert!(e.contains("no way to obtain a token"), "{e}");
        let mut half = fleet.clone();
        half["api_key"] = "k".into();
        assert!(load(half).expect_err("half a consent pair").contains("needs both `api_key` and `api_secret`"));
    }

    #[test]
    fn the_lease_must_leave_room_for_a_mint() {
        let base = serde_json::json!({"redis_url": "redis://127.0.0.1:6379", "fleet_key": KEY, "node_name": "b",
                                      "pin": "1234", "totp_secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"});
        assert_eq!(load(base.clone()).expect("defaults").fleet.map(|f| f.lease), Some(DEFAULT_LEASE));
        let mut short = base.clone();
        short["fleet_lease"] = "2s".into();
        short["dhan_timeout"] = "800ms".into();
        assert_eq!(load(short.clone()).expect("2 s").fleet.map(|f| f.lease), Some(Duration::from_secs(2)));
        short["dhan_timeout"] = "1500ms".into();
        let e = load(short).expect_err("too short for a mint");
        assert!(e.contains("`fleet_lease` (2s) must be at least twice `dhan_timeout` (1s 500ms)"), "{e}");
        let mut long = base.clone();
        long["fleet_lease"] = "20m".into();
        let e = load(long).expect_err("a dead leader would be noticed after expiry");
        assert!(e.contains("`fleet_lease` (20m) must be at most half of `refresh_before` (30m)"), "{e}");
    }

    #[test]
    fn plain_redis_beyond_this_machine_is_a_warning() {
        let (cfg, problems, warnings) =
            run(&[("redis_url", "redis://:pw-xyzzy@redis.internal:6379"), ("fleet_key", KEY)]);
        assert!(cfg.is_some() && problems.is_empty());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("rediss://") && !warnings[0].contains("xyzzy"), "{warnings:?}");
        let (_, _, warnings) = run(&[("redis_url", "rediss://:pw@redis.internal:6379"), ("fleet_key", KEY)]);
        assert!(warnings.is_empty());
    }
}
