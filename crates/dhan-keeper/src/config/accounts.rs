//! Several Dhan accounts in one config: `"accounts": [ … ]`, each entry a complete account.
//!
//! Families keep several accounts (spouse, parents, an HUF). The top-level keys are the shared
//! defaults (Telegram, HTTP, market hours, durations); each entry names its account with a
//! `label` and brings its own credentials, and may override the handful of keys that can differ
//! per account ([`ACCOUNT_KEYS`]). Each entry becomes a complete [`Config`], validated by the
//! same rules as a single-account config, so an account behaves exactly like a config of its
//! own. A config without `accounts` is one account labelled by its client id.
//!
//! Every problem in every account is reported at once: a problem of a shared key once, a
//! problem of an account prefixed with `accounts[i] (label "x"):`.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::load::{self, ConfigError, Layers};
use super::{Config, KNOWN_KEYS, validate};

/// The key that holds the list of accounts.
pub const ACCOUNTS_KEY: &str = "accounts";

/// The keys an entry of `accounts` may hold (secrets also as `<key>_file`). Every other known
/// key is shared by all accounts and lives at the top level.
pub const ACCOUNT_KEYS: &[&str] = &[
    "label",
    "client_id",
    "pin",
    "totp_secret",
    "api_key",
    "api_secret",
    "token_file",
    "on_refresh",
    "refresh_before",
    "alert_before",
    "final_alert_before",
    "dhan_auth_url",
    "dhan_api_url",
    "telegram_chat_id",
    "bind_address",
    "pin_file",
    "totp_secret_file",
    "api_key_file",
    "api_secret_file",
];

/// Keys that say whose account it is: with `accounts`, they belong inside each entry.
const PER_ACCOUNT_ONLY: &[&str] = &["client_id", "pin", "totp_secret", "api_key", "api_secret", "token_file"];

/// How the trader names an account in chat and on the command line: `[a-z0-9_-]{1,16}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(String);

impl Label {
    /// The longest label.
    pub const MAX_LEN: usize = 16;

    /// A label as the trader wrote it, or why it is not one.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(raw.to_string()))
        } else {
            Err(format!(
                "`label` must be 1 to 16 characters of a-z, 0-9, `_` and `-` (like \"mom\" or \"huf-2\"); got {:?}",
                crate::harden::sanitize(raw, 40)
            ))
        }
    }

    /// The label of a config without `accounts`: its client id (lower case, at most 16
    /// characters; client ids are letters and digits, so it is always a valid label).
    pub fn from_client_id(client_id: &str) -> Self {
        let mut s: String = client_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .take(Self::MAX_LEN)
            .collect();
        if s.is_empty() {
            s.push_str("account");
        }
        Self(s)
    }

    /// The label as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

/// What to say when several accounts were listed and none was named (the CLI and the bot say
/// the same).
pub fn no_label(count: usize, labels: &str) -> String {
    format!("there are {count} accounts ({labels}); say which one")
}

/// What to say when a named account does not exist.
pub fn unknown_label(label: &str, labels: &str) -> String {
    format!("no account is labelled {:?}; the accounts are: {labels}", crate::harden::sanitize(label, 40))
}

/// One account: its label, its complete config, and the extra chat its alerts also go to.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    /// How the trader names it.
    pub label: Label,
    /// Everything about it, shared defaults applied (its `telegram_chat_id` is the shared one).
    pub config: Config,
    /// The account's own `telegram_chat_id`: its alerts go there as well as to the shared chat
    /// (that chat reads, it does not administer).
    pub alert_chat_id: Option<i64>,
}

/// Every account a config describes.
#[derive(Debug, Clone)]
pub struct Accounts {
    /// The accounts, in the order the config lists them (never empty).
    pub list: Vec<AccountConfig>,
    /// Whether the config used `accounts` (false: the classic one-account config).
    pub listed: bool,
    /// The file they were read from, if any.
    pub path: Option<PathBuf>,
    /// Every warning once: shared ones plain, an account's prefixed with it.
    pub warnings: Vec<String>,
}

impl Accounts {
    /// A single, unlabelled account: the classic config (as [`Config::load`] returns it).
    pub fn one(config: Config) -> Self {
        let label = Label::from_client_id(&config.client_id);
        let (path, warnings) = (config.path.clone(), config.warnings.clone());
        Self { list: vec![AccountConfig { label, config, alert_chat_id: None }], listed: false, path, warnings }
    }

    /// The account with this label (as typed: case and spaces around it do not matter).
    pub fn get(&self, label: &str) -> Option<&AccountConfig> {
        let label = label.trim().to_ascii_lowercase();
        self.list.iter().find(|a| a.label.as_str() == label)
    }

    /// The labels, in order.
    pub fn labels(&self) -> Vec<&str> {
        self.list.iter().map(|a| a.label.as_str()).collect()
    }

    /// The account a command acts on (`--account LABEL`, `/refresh LABEL`): the one labelled so,
    /// or the only one when no label is given. `Err` says what to type instead.
    pub fn select(&self, label: Option<&str>) -> Result<&AccountConfig, String> {
        let labels = self.labels().join(", ");
        match (label, self.list.as_slice()) {
            (None, [only]) => Ok(only),
            (None, _) => Err(no_label(self.list.len(), &labels)),
            (Some(l), _) => self.get(l).ok_or_else(|| unknown_label(l, &labels)),
        }
    }

    /// The accounts of a Dhan client id (a pasted consent token names its client): usually one.
    pub fn by_client_id(&self, client_id: &str) -> Vec<&AccountConfig> {
        self.list.iter().filter(|a| a.config.client_id == client_id).collect()
    }
}

/// All accounts of a layered config: the `accounts` list, or the top level as one account.
pub(super) fn from_layers(layers: Layers) -> Result<Accounts, ConfigError> {
    if !layers.map.contains_key(ACCOUNTS_KEY) {
        return one_account(layers);
    }
    let Layers { mut map, path, base_dir, origin, mut warnings } = layers;
    let mut problems = Vec::new();
    let entries = take_entries(&mut map, &mut problems);
    check_shared_keys(&mut map, &mut problems, &mut warnings);
    let mut listing = Listing::new(map, base_dir, path, problems, warnings);
    for (i, entry) in entries.into_iter().enumerate() {
        listing.add(i, entry);
    }
    listing.finish(origin)
}

/// The classic config without `accounts`: the top level is the one account, labelled by its
/// client id, so old configs keep working unchanged.
fn one_account(layers: Layers) -> Result<Accounts, ConfigError> {
    let path = layers.path.clone();
    let config = load::single(layers)?;
    let warnings = config.warnings.clone();
    let label = Label::from_client_id(&config.client_id);
    Ok(Accounts { list: vec![AccountConfig { label, config, alert_chat_id: None }], listed: false, path, warnings })
}

/// Takes the `accounts` list out of the shared keys; an empty list or anything but a list is a
/// problem (then there are no entries to check, but the shared keys still are).
fn take_entries(map: &mut Map<String, Value>, problems: &mut Vec<String>) -> Vec<Value> {
    match map.remove(ACCOUNTS_KEY) {
        Some(Value::Array(entries)) if !entries.is_empty() => entries,
        Some(Value::Array(_)) => {
            problems.push(
                "`accounts` is empty: list at least one account, or remove the key and configure one account at \
                 the top level"
                    .into(),
            );
            Vec::new()
        }
        _ => {
            problems.push(
                "`accounts` must be a list of objects, like [{\"label\": \"mom\", \"client_id\": \"…\", …}]".into(),
            );
            Vec::new()
        }
    }
}

/// Checks the shared part: no account's identity at the top level (it would silently belong to
/// every account), secret files read once, and unknown keys warned about once.
fn check_shared_keys(map: &mut Map<String, Value>, problems: &mut Vec<String>, warnings: &mut Vec<String>) {
    for key in PER_ACCOUNT_ONLY {
        let file_key = format!("{key}_file");
        for k in [key.to_string(), file_key] {
            if map.remove(&k).is_some_and(|v| !v.is_null()) {
                problems.push(per_account_only(&k, key));
            }
        }
    }
    load::read_secret_files(map, problems);
    for key in map.keys() {
        if !KNOWN_KEYS.contains(&key.as_str()) {
            warnings.push(format!("unknown key `{key}` in the config is ignored ({})", load::hint(key, KNOWN_KEYS)));
        }
    }
}

/// What earlier entries already claimed, by entry index: two accounts must not share a label or
/// a token file, and should not share a client id.
#[derive(Default)]
struct Claimed {
    labels: HashMap<String, usize>,
    token_files: HashMap<PathBuf, usize>,
    client_ids: HashMap<String, usize>,
}

/// The messages about one entry, collected unprefixed and prefixed with its name at the end.
#[derive(Default)]
struct Notes {
    problems: Vec<String>,
    warnings: Vec<String>,
}

/// The accounts read so far, with the shared keys every entry is merged onto and every message
/// found so far, so each entry can be read on its own and all problems reported at once.
struct Listing {
    /// The shared top-level keys (without `accounts`).
    shared: Map<String, Value>,
    /// The names of the shared keys, for telling shared messages from an account's.
    shared_keys: Vec<String>,
    base_dir: PathBuf,
    path: Option<PathBuf>,
    claimed: Claimed,
    list: Vec<AccountConfig>,
    /// Each listed account's own warnings, prefixed with its name.
    own_warnings_of: Vec<Vec<String>>,
    problems: Vec<String>,
    warnings: Vec<String>,
}

impl Listing {
    /// Starts a listing on the checked shared keys.
    fn new(
        shared: Map<String, Value>,
        base_dir: PathBuf,
        path: Option<PathBuf>,
        problems: Vec<String>,
        warnings: Vec<String>,
    ) -> Self {
        let shared_keys = shared.keys().cloned().collect();
        Self {
            shared,
            shared_keys,
            base_dir,
            path,
            claimed: Claimed::default(),
            list: Vec::new(),
            own_warnings_of: Vec::new(),
            problems,
            warnings,
        }
    }

    /// Reads entry `i`: its own keys, merged onto the shared ones and validated like a config of
    /// its own; an account when it is good, its messages prefixed with its name either way.
    fn add(&mut self, i: usize, entry: Value) {
        let Value::Object(mut own) = entry else {
            self.problems
                .push(format!("accounts[{i}] must be an object like {{\"label\": \"mom\", \"client_id\": \"…\", …}}"));
            return;
        };
        let label = entry_label(&own);
        let name = match &label {
            Ok(l) => format!("accounts[{i}] (label \"{l}\")"),
            Err(_) => format!("accounts[{i}]"),
        };
        let mut notes = Notes::default();
        if let Err(e) = &label {
            notes.problems.push(e.clone());
        }
        if let Ok(l) = &label
            && let Some(first) = self.claimed.labels.insert(l.as_str().to_string(), i)
        {
            notes
                .problems
                .push(format!("`label` \"{l}\" is already the label of accounts[{first}]; each account needs its own"));
        }
        let alert_chat_id = own_keys(&mut own, &mut notes);
        let (merged, shared_only) = self.merge(own, &label, i);
        self.check_collisions(&merged, i, &mut notes);
        self.validate(&merged, label, alert_chat_id, &name, &shared_only, &mut notes);
        self.problems.extend(notes.problems.into_iter().map(|p| format!("{name}: {p}")));
        self.warnings.extend(notes.warnings.into_iter().map(|w| format!("{name}: {w}")));
    }

    /// The entry's keys merged onto the shared ones (the entry wins), with a token file of its
    /// own by default; and the shared keys it does not override, which decide whether a message
    /// about the merged config is shared or the account's.
    fn merge(
        &self,
        own: Map<String, Value>,
        label: &Result<Label, String>,
        i: usize,
    ) -> (Map<String, Value>, Vec<String>) {
        let mut merged = self.shared.clone();
        if !own.contains_key("token_file") {
            let file = match label {
                Ok(l) => format!("dhan_token.{l}.json"),
                Err(_) => format!("dhan_token.accounts-{i}.json"),
            };
            merged.insert("token_file".into(), Value::String(file));
        }
        let own_keys: Vec<String> = own.keys().cloned().collect();
        merged.extend(own);
        let shared_only: Vec<String> = self.shared_keys.iter().filter(|k| !own_keys.contains(k)).cloned().collect();
        (merged, shared_only)
    }

    /// A token file already used by an earlier account is a problem (the two would overwrite
    /// each other); a shared client id only a warning (legal, but the tokens kill each other).
    fn check_collisions(&mut self, merged: &Map<String, Value>, i: usize, notes: &mut Notes) {
        // Collisions are judged on the raw values, so they are found even when a key is bad.
        let text = |k: &str| merged.get(k).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
        if let Some(file) = text("token_file").map(|t| self.base_dir.join(t))
            && let Some(first) = self.claimed.token_files.insert(file.clone(), i)
        {
            notes.problems.push(format!(
                "`token_file` {} is also the token file of accounts[{first}]; each account needs its own \
                 (leave it out for dhan_token.<label>.json)",
                file.display()
            ));
        }
        if let Some(id) = text("client_id")
            && let Some(first) = self.claimed.client_ids.insert(id.to_string(), i)
        {
            notes.warnings.push(format!(
                "`client_id` {id} is also the client id of accounts[{first}]: Dhan keeps one live token per \
                 client id, so these two accounts would keep killing each other's token"
            ));
        }
    }

    /// Validates the merged config by the single-account rules and sorts its messages into
    /// shared and own; a valid config with a valid label becomes an account.
    fn validate(
        &mut self,
        merged: &Map<String, Value>,
        label: Result<Label, String>,
        alert_chat_id: Option<i64>,
        name: &str,
        shared_only: &[String],
        notes: &mut Notes,
    ) {
        match validate::validate(merged, &self.base_dir, Vec::new()) {
            Ok(mut config) => {
                for w in config.warnings.drain(..) {
                    sort_out(w, shared_only, &mut notes.warnings, &mut self.warnings);
                }
                if let Ok(label) = label {
                    config.path = self.path.clone();
                    self.list.push(AccountConfig { label, config, alert_chat_id });
                    self.own_warnings_of.push(notes.warnings.iter().map(|w| format!("{name}: {w}")).collect());
                }
            }
            Err(found) => {
                for p in found {
                    sort_out(p, shared_only, &mut notes.problems, &mut self.problems);
                }
            }
        }
    }

    /// All accounts, or every problem at once; each account keeps one shared calendar and
    /// carries the shared warnings plus its own.
    fn finish(self, origin: String) -> Result<Accounts, ConfigError> {
        let Self { mut list, own_warnings_of, problems, warnings, path, .. } = self;
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { origin, problems });
        }
        // Every account carries the same calendar (`calendar_file` is shared): keep one copy.
        if let Some(calendar) = list.first().map(|a| a.config.calendar.clone()) {
            for a in &mut list {
                a.config.calendar = calendar.clone();
            }
        }
        // Each account's config carries the shared warnings and its own.
        let shared_warnings: Vec<String> = warnings.iter().filter(|w| !w.starts_with("accounts[")).cloned().collect();
        for (a, own) in list.iter_mut().zip(own_warnings_of) {
            a.config.warnings = shared_warnings.iter().cloned().chain(own).collect();
        }
        Ok(Accounts { list, listed: true, path, warnings })
    }
}

/// The entry's label, or why it has none that can be used (missing, not a string, bad text).
fn entry_label(own: &Map<String, Value>) -> Result<Label, String> {
    match own.get("label") {
        Some(Value::String(s)) => Label::parse(s.trim()),
        None | Some(Value::Null) => {
            Err("`label` is missing: name the account (a-z, 0-9, `_`, `-`, up to 16 characters, like \"mom\")".into())
        }
        Some(_) => Err("`label` must be a string like \"mom\"".into()),
    }
}

/// Keeps only the keys an entry may hold (a shared key inside an entry is a problem, an unknown
/// one a warning), reads its secret files, and takes out its own alert chat, which is returned:
/// the merged config keeps the shared chat.
fn own_keys(own: &mut Map<String, Value>, notes: &mut Notes) -> Option<i64> {
    for key in own.keys().filter(|k| !ACCOUNT_KEYS.contains(&k.as_str())) {
        if KNOWN_KEYS.contains(&key.as_str()) {
            notes.problems.push(format!(
                "`{key}` is shared by every account: set it at the top level of the config, not inside an account"
            ));
        } else {
            let shown = crate::harden::sanitize(key, 40);
            notes.warnings.push(format!("unknown key `{shown}` is ignored ({})", load::hint(key, ACCOUNT_KEYS)));
        }
    }
    own.retain(|k, _| ACCOUNT_KEYS.contains(&k.as_str()) && k != "label");
    load::read_secret_files(own, &mut notes.problems);
    let alert_chat_id = match validate::account_chat_id(own) {
        Ok(id) => id,
        Err(mut e) => {
            notes.problems.append(&mut e);
            None
        }
    };
    own.remove("telegram_chat_id");
    alert_chat_id
}

/// Puts a message about an account's merged config where it belongs: with the shared messages
/// (once, however many accounts repeat it) when it starts with a key that only the top level
/// sets for this account (`shared_only`), else with the account (its own keys, a missing key,
/// a rule across its keys).
fn sort_out(msg: String, shared_only: &[String], own: &mut Vec<String>, shared: &mut Vec<String>) {
    let key = msg.strip_prefix('`').and_then(|rest| rest.split_once('`')).map(|(k, _)| k);
    let is_shared = key.is_some_and(|k| shared_only.iter().any(|s| s == k));
    if !is_shared {
        own.push(msg);
    } else if !shared.contains(&msg) {
        shared.push(msg);
    }
}

fn per_account_only(found: &str, key: &str) -> String {
    let env = format!("{}{}", super::ENV_PREFIX, found.to_ascii_uppercase());
    if key == "token_file" {
        format!(
            "`{found}` is set at the top level (in the file or as {env}), but with `accounts` each account has its \
             own token file: set `token_file` inside an account, or leave it out for dhan_token.<label>.json"
        )
    } else {
        format!(
            "`{found}` is set at the top level (in the file or as {env}), but with `accounts` it belongs to one \
             account: move it into that account's entry"
        )
    }
}

/// The one account of a config, for the commands that work on one account.
pub(super) fn only_one(accounts: Accounts) -> Result<Config, ConfigError> {
    let origin = accounts.path.as_ref().map_or("the config".into(), |p| format!("config file {}", p.display()));
    let n = accounts.list.len();
    let labels = accounts.labels().join(", ");
    let mut list = accounts.list;
    match list.pop() {
        Some(only) if n == 1 => {
            let mut config = only.config;
            config.warnings = accounts.warnings;
            Ok(config)
        }
        _ => Err(ConfigError::Invalid {
            origin,
            problems: vec![format!(
                "it lists {n} accounts ({labels}); say which one (on the command line: --account LABEL)"
            )],
        }),
    }
}

mod duplicates;

pub(super) use duplicates::duplicate_keys_in_entries;
#[cfg(test)]
mod tests;
