//! Finding the config, reading it, and layering env overrides and `*_file` secrets on top.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{Config, KNOWN_KEYS, SECRET_KEYS, validate};

/// Prefix of every environment override: `DHAN_KEEPER_PIN`, `DHAN_KEEPER_TOTP_SECRET_FILE`, ...
pub const ENV_PREFIX: &str = "DHAN_KEEPER_";

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No file at the path and no env-only configuration either.
    #[error(
        "config file {path} not found; create it (see the README's Configuration section), pass --config PATH, \
         or set DHAN_KEEPER_CONFIG"
    )]
    NotFound {
        /// Where we looked.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("cannot read config file {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not JSON, or not a JSON object.
    #[error("config file {path} is not valid JSON: {detail}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What serde_json said, with line and column.
        detail: String,
    },
    /// One line per problem, each naming the key and the fix.
    #[error("{} has {} problem{}:\n{}", origin, problems.len(), if problems.len() == 1 { "" } else { "s" },
            problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The file (or "the environment").
        origin: String,
        /// What is wrong, one entry per key.
        problems: Vec<String>,
    },
}

/// `./dhan_config.json`, the prototype's location.
pub fn default_path() -> PathBuf {
    PathBuf::from("dhan_config.json")
}

pub(super) fn load(explicit: Option<PathBuf>, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let layers = read(explicit, env)?;
    if layers.map.contains_key(super::accounts::ACCOUNTS_KEY) {
        // A config with `accounts` is read by `load_accounts`; a command that works on one
        // account gets it when there is exactly one.
        return super::accounts::only_one(super::accounts::from_layers(layers)?);
    }
    single(layers)
}

/// The file (or environment) read and layered, not yet validated.
pub(super) struct Layers {
    /// Every top-level key, env overrides applied. `*_file` secrets are still files here.
    pub(super) map: Map<String, Value>,
    /// The file, when there was one.
    pub(super) path: Option<PathBuf>,
    /// Where relative paths in the config are resolved.
    pub(super) base_dir: PathBuf,
    /// "config file X" or "the DHAN_KEEPER_* environment", for error messages.
    pub(super) origin: String,
    /// Warnings so far (file permissions).
    pub(super) warnings: Vec<String>,
}

pub(super) fn read(explicit: Option<PathBuf>, env: &dyn Fn(&str) -> Option<String>) -> Result<Layers, ConfigError> {
    let path = explicit
        .or_else(|| env("DHAN_KEEPER_CONFIG").filter(|p| !p.is_empty()).map(PathBuf::from))
        .unwrap_or_else(default_path);
    let mut warnings = Vec::new();
    let (mut map, from_file) = match read_text(&path, MAX_CONFIG) {
        Ok(text) => {
            if let Some(key) = duplicate_key(&text) {
                return Err(ConfigError::Invalid {
                    origin: format!("config file {}", path.display()),
                    problems: vec![format!(
                        "`{key}` appears more than once; only the last would count, so keep exactly one"
                    )],
                });
            }
            let dups = super::accounts::duplicate_keys_in_entries(&text);
            if !dups.is_empty() {
                return Err(ConfigError::Invalid {
                    origin: format!("config file {}", path.display()),
                    problems: dups
                        .into_iter()
                        .map(|(i, key)| {
                            format!(
                                "accounts[{i}]: `{key}` appears more than once; only the last would count, so keep \
                                 exactly one"
                            )
                        })
                        .collect(),
                });
            }
            (parse_object(&path, &text)?, true)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // A config made only of environment variables (containers) is fine.
            if env(&format!("{ENV_PREFIX}CLIENT_ID")).is_none() {
                return Err(ConfigError::NotFound { path });
            }
            (Map::new(), false)
        }
        Err(source) => return Err(ConfigError::Unreadable { path, source }),
    };
    if let Some(w) = permission_warning(&path).filter(|_| from_file) {
        warnings.push(w);
    }
    overlay_env(&mut map, env);
    let base_dir = if from_file {
        path.parent().map(Path::to_path_buf).filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| PathBuf::from("."))
    } else {
        PathBuf::from(".")
    };
    let origin =
        if from_file { format!("config file {}", path.display()) } else { "the DHAN_KEEPER_* environment".to_string() };
    Ok(Layers { map, path: from_file.then_some(path), base_dir, origin, warnings })
}

/// A config without `accounts`: the keys at the top level are the one account.
pub(super) fn single(layers: Layers) -> Result<Config, ConfigError> {
    let Layers { mut map, path, base_dir, origin, mut warnings } = layers;
    let mut problems = Vec::new();
    read_secret_files(&mut map, &mut problems);
    for key in map.keys() {
        if !KNOWN_KEYS.contains(&key.as_str()) {
            warnings.push(format!("unknown key `{key}` in the config is ignored ({})", hint(key, KNOWN_KEYS)));
        }
    }
    match validate::validate(&map, &base_dir, problems) {
        Ok(mut cfg) => {
            cfg.path = path;
            warnings.append(&mut cfg.warnings);
            cfg.warnings = warnings;
            Ok(cfg)
        }
        Err(problems) => Err(ConfigError::Invalid { origin, problems }),
    }
}

/// "did you mean `x`?" for the nearest of `known`, else "check the spelling".
pub(super) fn hint(key: &str, known: &[&'static str]) -> String {
    did_you_mean(key, known).map(|k| format!("did you mean `{k}`?")).unwrap_or("check the spelling".into())
}

/// The largest config file read.
const MAX_CONFIG: u64 = 1024 * 1024;
/// The largest `*_file` secret read.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Reads a file as text without blocking on a FIFO and without reading more than `limit` bytes.
fn read_text(path: &Path, limit: u64) -> std::io::Result<String> {
    let bytes = crate::harden::read_capped(path, limit)?;
    String::from_utf8(bytes).map_err(|_| std::io::Error::new(ErrorKind::InvalidData, "it is not UTF-8 text"))
}

/// The first top-level key that appears twice (serde_json would silently keep the last).
fn duplicate_key(text: &str) -> Option<String> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut seen = std::collections::HashSet::new();
            let mut dup = None;
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                if !seen.insert(key.clone()) && dup.is_none() {
                    dup = Some(key);
                }
            }
            Ok(dup)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde::Deserializer::deserialize_map(&mut de, Keys).ok().flatten().map(|k| crate::harden::sanitize(&k, 40))
}

fn parse_object(path: &Path, text: &str) -> Result<Map<String, Value>, ConfigError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ConfigError::Syntax {
            path: path.to_path_buf(),
            detail: format!("expected an object like {{\"client_id\": \"...\"}}, found {}", kind(&other)),
        }),
        Err(e) => Err(ConfigError::Syntax {
            path: path.to_path_buf(),
            // serde_json's message carries "at line L column C"; its text never quotes the input.
            detail: format!("{e}{}", python_hint(text)),
        }),
    }
}

/// A config written as a Python dict (`{'pin': '1234', 'x': True}`) is the commonest non-JSON
/// config, since the original prototype was Python: say what JSON wants instead.
fn python_hint(text: &str) -> &'static str {
    let single_quoted_key = text.contains("{'") || text.contains(", '");
    let python_words = [": True", ": False", ": None", ":True", ":False", ":None"].iter().any(|w| text.contains(w));
    let lines_start_quoted = text.lines().any(|l| l.trim_start().starts_with('\''));
    if single_quoted_key || python_words || lines_start_quoted {
        " (this looks like a Python dict: JSON needs double quotes around keys and strings, and true/false/null instead of True/False/None)"
    } else {
        ""
    }
}

/// The key of `known` closest to `key` by edit distance, if it is close enough to be a typo.
fn did_you_mean(key: &str, known: &[&'static str]) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance (small strings only: config keys).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn overlay_env(map: &mut Map<String, Value>, env: &dyn Fn(&str) -> Option<String>) {
    for key in KNOWN_KEYS {
        let var = format!("{ENV_PREFIX}{}", key.to_ascii_uppercase());
        if let Some(v) = env(&var) {
            let value = if *key == "on_refresh" {
                // An argv list: JSON array in the variable; a bare string is a one-word command.
                serde_json::from_str::<Value>(&v).ok().filter(Value::is_array).unwrap_or(Value::String(v))
            } else {
                Value::String(v)
            };
            map.insert((*key).to_string(), value);
        }
    }
    for key in SECRET_KEYS {
        let var = format!("{ENV_PREFIX}{}_FILE", key.to_ascii_uppercase());
        if let Some(v) = env(&var) {
            map.insert(format!("{key}_file"), Value::String(v));
        }
    }
}

pub(super) fn read_secret_files(map: &mut Map<String, Value>, problems: &mut Vec<String>) {
    for key in SECRET_KEYS {
        let file_key = format!("{key}_file");
        let Some(v) = map.remove(&file_key) else {
            continue;
        };
        let Value::String(file) = v else {
            problems.push(format!("`{file_key}` must be a path string"));
            continue;
        };
        if map.contains_key(*key) {
            problems.push(format!("`{key}` and `{file_key}` are both set; keep only one"));
            continue;
        }
        match read_text(Path::new(&file), MAX_SECRET_FILE) {
            Ok(text) => {
                map.insert((*key).to_string(), Value::String(text.trim_end_matches(['\n', '\r']).to_string()));
            }
            Err(e) => problems.push(format!("`{file_key}`: cannot read {file}: {e}")),
        }
    }
}

#[cfg(unix)]
fn permission_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "config file {} holds secrets but is readable by group/others (mode {mode:o}); run: chmod 600 {}",
            path.display(),
            path.display()
        )
    })
}

#[cfg(not(unix))]
fn permission_warning(_: &Path) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_key_gets_the_nearest_known_one() {
        let table = [
            ("telegram_chatid", Some("telegram_chat_id")),
            ("refresh_befor", Some("refresh_before")),
            ("Token_File", Some("token_file")),
            ("totp", None),
            ("completely_unrelated_thing", None),
        ];
        for (typo, want) in table {
            assert_eq!(did_you_mean(typo, KNOWN_KEYS), want, "{typo}");
        }
    }

    #[test]
    fn a_python_dict_gets_the_json_hint() {
        assert!(!python_hint("{'pin': '1234', 'debug': True}").is_empty());
        assert!(!python_hint("{\"pin\": None}").is_empty());
        assert!(!python_hint("{\n  'pin': '1234'\n}").is_empty());
        assert!(python_hint("{\"pin\": \"1234\",}").is_empty(), "a trailing comma is not Python");
    }
}
