//! Names in the fleet: the Redis URL (a secret), this node's name, and the Redis keys.
//!
//! Every key is derived here from the client id and a node name, both validated to a small
//! character set, so a key never contains a secret or a character that would let one client's
//! keys overlap another's (`dhan-keeper:{client_id}:…`; the braces are Redis Cluster hash tags,
//! which keep one client's keys on one shard so the Lua scripts may touch them together).

use std::fmt;

use url::Url;

use crate::secret::Secret;

/// `redis_url`: `redis://` or `rediss://`, with an optional user and password. A secret: its
/// `Debug` shows only the scheme, host and port.
#[derive(Clone)]
pub struct RedisUrl {
    url: Url,
    raw: Secret,
}

impl RedisUrl {
    /// Checks the form; the error never quotes the value (it may hold a password).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let hint = "must look like redis://[user:password@]host:6379[/db] or rediss://… for TLS";
        let url = Url::parse(raw).map_err(|e| format!("is not a URL ({e}); it {hint}"))?;
        if !matches!(url.scheme(), "redis" | "rediss") {
            return Err(format!("has the scheme {:?}; it {hint}", url.scheme()));
        }
        if !url.has_host() || url.host_str().is_some_and(str::is_empty) {
            return Err(format!("has no host; it {hint}"));
        }
        let path = url.path().trim_start_matches('/');
        if !path.is_empty() && path.parse::<u16>().is_err() {
            return Err(format!("has a path that is not a database number; it {hint}"));
        }
        // The client library must accept it too; its error is not shown (it could quote the URL).
        redis::Client::open(raw).map_err(|_| format!("is not accepted by the Redis client; it {hint}"))?;
        Ok(Self { url, raw: Secret::new(raw) })
    }

    /// The parsed URL (holds the password: for decisions, never for display).
    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    /// The full URL, password included: only for opening the connection.
    pub(crate) fn expose(&self) -> &str {
        self.raw.expose()
    }

    /// The password as written in the URL (percent-encoded) and as Redis receives it
    /// (decoded): both are scrubbed from anything printed.
    pub fn password_forms(&self) -> Vec<String> {
        let Some(encoded) = self.url().password().filter(|p| !p.is_empty()) else { return Vec::new() };
        let decoded = percent_decoded(encoded);
        let mut forms = vec![encoded.to_string()];
        if decoded != encoded {
            forms.push(decoded);
        }
        forms
    }

    /// `rediss://host:port/db`, without user or password: safe for logs and `fleet status`.
    pub fn redacted(&self) -> String {
        let port = self.url.port().map(|p| format!(":{p}")).unwrap_or_default();
        format!("{}://{}{port}{}", self.url.scheme(), self.url.host_str().unwrap_or_default(), self.url.path())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.redacted())
    }
}

/// A node's name in the fleet: 1 to 64 of `A-Z a-z 0-9 . _ -` (it becomes part of a Redis key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeName(String);

impl NodeName {
    /// Checks the form.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = (1..=64).contains(&raw.len())
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(Self(raw.to_string()))
        } else {
            Err(format!(
                "must be 1 to 64 letters, digits, '.', '_' or '-' (it names this keeper in the fleet), got {:?}",
                crate::harden::sanitize(raw, 70)
            ))
        }
    }

    /// This machine's host name (from the kernel), as the default name.
    pub fn from_host() -> Result<Self, String> {
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map_err(|e| format!("cannot read the host name ({e}); set `node_name`"))?;
        Self::parse(raw.trim()).map_err(|e| format!("the host name {e}; set `node_name`"))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Redis keys and channel of one client id.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys for `client_id` (already validated by the config: letters and digits).
    pub(crate) fn new(client_id: &str) -> Self {
        Self { prefix: format!("dhan-keeper:{{{client_id}}}") }
    }

    /// The lease: which node may mint (string, with expiry).
    pub(crate) fn lease(&self) -> String {
        format!("{}:lease", self.prefix)
    }

    /// The shared record: generation, holder, expiry, source, the sealed token (hash).
    pub(crate) fn token(&self) -> String {
        format!("{}:token", self.prefix)
    }

    /// The pub/sub channel announcing each new generation.
    pub(crate) fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// One node's heartbeat (hash, with expiry).
    pub(crate) fn node(&self, node: &NodeName) -> String {
        format!("{}:node:{}", self.prefix, node.as_str())
    }

    /// The pattern matching every node's heartbeat.
    pub(crate) fn node_pattern(&self) -> String {
        format!("{}:node:*", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_are_checked_and_never_shown_with_their_password() {
        let ok = [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("rediss://user:s3cr3t@redis.example:6380/2", "rediss://redis.example:6380/2"),
            ("redis://:s3cr3t@localhost", "redis://localhost"),
        ];
        for (raw, shown) in ok {
            let u = RedisUrl::parse(raw).expect(raw);
            assert_eq!(u.redacted(), shown);
            assert!(!format!("{u:?}").contains("s3cr3t"));
        }
        for bad in ["http://h:1", "redis://", "redis://h/notadb", "s3cr3t", "redis://user:s3cr3t@/x"] {
            let e = RedisUrl::parse(bad).expect_err(bad);
            assert!(!e.contains("s3cr3t"), "{e}");
            assert!(e.contains("redis://"), "{e}");
        }
    }

    #[test]
    fn node_names_are_safe_key_parts() {
        for ok in ["box-1", "trading.host_2", "a"] {
            assert_eq!(NodeName::parse(ok).map(|n| n.0), Ok(ok.to_string()));
        }
        for bad in ["", "has space", "colon:name", "star*", &"x".repeat(65)] {
            assert!(NodeName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_per_client_and_hash_tagged() {
        let k = Keys::new("1000000001");
        assert_eq!(k.lease(), "dhan-keeper:{1000000001}:lease");
        assert_eq!(k.token(), "dhan-keeper:{1000000001}:token");
        assert_eq!(k.events(), "dhan-keeper:{1000000001}:events");
        let n = NodeName::parse("box-1").expect("name");
        assert_eq!(k.node(&n), "dhan-keeper:{1000000001}:node:box-1");
        assert_eq!(k.node_pattern(), "dhan-keeper:{1000000001}:node:*");
    }
}

/// `%XX` sequences decoded (as UTF-8, lossily); anything else kept as it is.
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod password_tests {
    use super::*;

    #[test]
    fn both_written_forms_of_the_password_are_known_for_scrubbing() {
        let u = RedisUrl::parse("redis://:p%40ss%2Fw0rd@127.0.0.1:6379").expect("url");
        assert_eq!(u.password_forms(), vec!["p%40ss%2Fw0rd".to_string(), "p@ss/w0rd".to_string()]);
        let plain = RedisUrl::parse("redis://:plain@127.0.0.1:6379").expect("url");
        assert_eq!(plain.password_forms(), vec!["plain".to_string()]);
        assert!(RedisUrl::parse("redis://127.0.0.1:6379").expect("url").password_forms().is_empty());
    }
}
