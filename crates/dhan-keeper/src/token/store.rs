//! `dhan_token.json`: atomic, private, and readable by programs written for the prototype.
//!
//! The prototype wrote `{"access_token": ..., "expiry_time": "2026-11-26T08:30:00"}` (naive IST);
//! trading programs read exactly those keys, so they stay, unchanged in meaning. The richer keys
//! (`expires_at` with its offset, `client_id`, `obtained_at`, `source`) sit beside them.
//!
//! A write goes to a fresh temp file in the same directory created with mode 0600, is fsynced,
//! renamed over the target, and the directory is fsynced: a reader (or a `kill -9`) sees the old
//! file or the new one, never half of one.
//!
//! The file may sit where someone else can reach it, so reading it never blocks (a FIFO in its
//! place is refused, not waited on: the daemon is single-threaded), only a regular file of at
//! most [`MAX_TOKEN_FILE`] bytes is read, and a file that is clearly not a token file (the
//! config, say) is refused rather than set aside and replaced. The mode (default 0600) and group
//! come from `token_file_mode` / `token_file_group` and are applied to every write. A temp file
//! left by a crash between writing and renaming may hold the only live token (the mint killed
//! the previous one), so [`recover_temps`] promotes it when it is newer than the file.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use super::{Token, TokenSource};
use crate::harden;
use crate::ist;
use crate::secret::Secret;

/// A token-file failure. Every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading, writing, renaming or syncing failed.
    #[error("cannot {op} token file {path}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is something else than a token file (another program's file, the config...);
    /// it is never replaced.
    #[error(
        "{path} does not look like a token file ({reason}); dhan-keeper will not overwrite it: point token_file at \
         a file of its own, or move this one away"
    )]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },
    /// The file exists but is not a token file we can use.
    #[error("token file {path} is corrupt ({reason}); it will be set aside and replaced by the next token")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The on-disk shape. `access_token` and `expiry_time` are the prototype's keys.
#[derive(Serialize, Deserialize)]
struct FileFormat {
    access_token: Option<String>,
    expiry_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    obtained_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<TokenSource>,
}

/// The largest token file read; a real one is well under 2 KiB.
pub const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// The keys a token file may hold.
const KEYS: &[&str] = &["access_token", "expiry_time", "expires_at", "client_id", "obtained_at", "source"];

/// Who may read the file: permission bits and an optional group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Permission bits (0600 unless `token_file_mode` says otherwise).
    pub mode: u32,
    /// Group id to give the file to.
    pub group: Option<u32>,
}

impl Default for Access {
    fn default() -> Self {
        Self { mode: 0o600, group: None }
    }
}

/// Loads and saves the token file.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
    access: Access,
}

impl TokenStore {
    /// A store for `path`, written with mode 0600.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), access: Access::default() }
    }

    /// The store the config describes: its path, `token_file_mode` and `token_file_group`.
    pub fn for_config(cfg: &crate::config::Config) -> Self {
        Self { path: cfg.token_file.clone(), access: Access { mode: cfg.token_file_mode, group: cfg.token_file_group } }
    }

    /// The token file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved token; `Ok(None)` when there is no file.
    pub fn load(&self) -> Result<Option<Token>, StoreError> {
        let bytes = match harden::read_capped(&self.path, MAX_TOKEN_FILE) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == ErrorKind::InvalidData => {
                return Err(StoreError::Foreign { path: self.path.clone(), reason: e.to_string() });
            }
            Err(source) => {
                return Err(StoreError::Io { op: "read", path: self.path.clone(), source });
            }
        };
        parse(&bytes).map(Some).map_err(|reason| match foreign(&bytes) {
            Some(reason) => StoreError::Foreign { path: self.path.clone(), reason },
            // serde's message may quote bytes from the file: clipped and without control codes.
            None => StoreError::Corrupt { path: self.path.clone(), reason: harden::sanitize(&reason, 200) },
        })
    }

    /// Replaces the file with `token`, atomically, with the configured mode and group.
    pub fn save(&self, token: &Token) -> Result<(), StoreError> {
        write_atomic_with(&self.path, render(token).as_bytes(), true, self.access)
            .map_err(|(op, source)| StoreError::Io { op, path: self.path.clone(), source })
    }

    /// What is wrong with the file's owner, mode or group, if anything (a file left by an older
    /// version, or planted by another user, may be 0644 or someone else's).
    pub fn access_problem(&self) -> Option<String> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let meta = fs::symlink_metadata(&self.path).ok()?;
            let me = rustix::process::geteuid().as_raw();
            let mode = meta.mode() & 0o7777;
            if meta.uid() != me {
                return Some(format!("it belongs to uid {}, not to this user (uid {me})", meta.uid()));
            }
            if mode != self.access.mode {
                return Some(format!("its mode is {mode:04o}, not {:04o}", self.access.mode));
            }
            if let Some(gid) = self.access.group.filter(|g| *g != meta.gid()) {
                return Some(format!("its group is gid {}, not {gid}", meta.gid()));
            }
        }
        None
    }

    /// Moves a corrupt file out of the way (`dhan_token.json.corrupt-20261125T101500`), so it is
    /// kept for inspection and never silently overwritten. Returns where it went.
    pub fn set_aside(&self, now: DateTime<Utc>) -> Result<PathBuf, StoreError> {
        let mut name = self.path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(format!(".corrupt-{}", ist::to_ist(&now).format("%Y%m%dT%H%M%S")));
        let target = self.path.with_file_name(name);
        fs::rename(&self.path, &target).map_err(|source| StoreError::Io {
            op: "set aside",
            path: self.path.clone(),
            source,
        })?;
        Ok(target)
    }
}

/// After a crash: promotes the newest valid token among the temp files left beside the token
/// file when it expires later than the file's own token (or the file has none), and deletes the
/// rest. Returns whether one was promoted and how many were deleted. Call only while holding the
/// instance lock.
pub(crate) fn recover_temps(store: &TokenStore, now: DateTime<Utc>) -> (bool, usize) {
    let temps = temp_files(&store.path);
    let best = temps
        .iter()
        .filter_map(|p| {
            let t = parse(&harden::read_capped(p, MAX_TOKEN_FILE).ok()?).ok()?;
            (!t.is_expired(now)).then_some((p.clone(), t.expires_at))
        })
        .max_by_key(|(_, exp)| *exp);
    // Never over a file that is not ours (the config, a FIFO...): only over none, a damaged
    // token file, or an older token.
    let current = match store.load() {
        Ok(t) => t.map(|t| t.expires_at),
        Err(StoreError::Corrupt { .. }) => None,
        // Start-up refuses such a file; the temps are kept, one may hold the only live token.
        Err(_) => return (false, 0),
    };
    let promoted = match best {
        Some((p, exp)) if current.is_none_or(|c| exp > c) => {
            let ok = fs::rename(&p, &store.path).is_ok();
            if ok {
                sync_dir(&store.path);
            }
            ok
        }
        _ => false,
    };
    let removed = temp_files(&store.path).iter().filter(|p| fs::remove_file(p).is_ok()).count();
    (promoted, removed)
}

fn temp_files(path: &Path) -> Vec<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = format!(".{}.tmp-", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
    let Ok(entries) = fs::read_dir(&dir) else { return Vec::new() };
    entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(&prefix)).map(|e| e.path()).collect()
}

fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
}

/// Why bytes that are not a token file are not even a damaged one (so they must not be set
/// aside and replaced): not JSON and not the start of an object, or an object with keys a token
/// file never has.
fn foreign(bytes: &[u8]) -> Option<String> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Some("it is not text".into());
    };
    let trimmed = text.trim_start();
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => map
            .keys()
            .find(|k| !KEYS.contains(&k.as_str()))
            .map(|k| format!("it has a key `{}` that token files do not have", harden::sanitize(k, 40))),
        Ok(_) => None,
        Err(_) if trimmed.is_empty() || trimmed.starts_with('{') => None,
        Err(_) => Some("it is not JSON".into()),
    }
}

/// Deletes the temp files [`write_atomic`] left beside `path` when its writer was killed (a token
/// file's may hold a token). Call only while holding the instance lock, when no other writer can
/// be mid-write.
pub(crate) fn remove_stale_temps(path: &Path) -> usize {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = format!(".{}.tmp-", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
    let Ok(entries) = fs::read_dir(&dir) else { return 0 };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

/// Writes `bytes` to `path` so that a reader (or a killed process) sees the old file or the new
/// one, never a mix: a 0600 temp file beside it, rename over the target. With `durable`, the data
/// and the rename are also fsynced, so they survive a power cut. On failure the temp file is
/// removed and the error names the step that failed.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<(), (&'static str, std::io::Error)> {
    write_atomic_with(path, bytes, durable, Access::default())
}

/// [`write_atomic`] with a chosen mode and group, set on the temp file before the rename (the
/// umask does not apply), so the file never exists with other permissions.
pub(crate) fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    durable: bool,
    access: Access,
) -> Result<(), (&'static str, std::io::Error)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}-{:08x}", std::process::id(), fastrand::u32(..)));
    let result = (|| {
        let mut f = open_private(&tmp).map_err(|e| ("create a temp file beside", e))?;
        apply_access(&f, access)?;
        f.write_all(bytes).map_err(|e| ("write", e))?;
        if durable {
            f.sync_all().map_err(|e| ("fsync", e))?;
        }
        drop(f);
        fs::rename(&tmp, path).map_err(|e| ("rename into place", e))?;
        // Make the rename itself durable. Some filesystems refuse to fsync a directory; the
        // data is already safe in the file, so that is not an error.
        if durable && let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn apply_access(f: &File, access: Access) -> Result<(), (&'static str, std::io::Error)> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(gid) = access.group {
        std::os::unix::fs::fchown(f, None, Some(gid)).map_err(|e| {
            let hint = std::io::Error::new(
                e.kind(),
                format!("{e}; the user running dhan-keeper must be a member of token_file_group (gid {gid})"),
            );
            ("give token_file_group to", hint)
        })?;
    }
    if access.mode != 0o600 {
        f.set_permissions(fs::Permissions::from_mode(access.mode)).map_err(|e| ("set token_file_mode on", e))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn apply_access(_: &File, _: Access) -> Result<(), (&'static str, std::io::Error)> {
    Ok(())
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

pub(crate) fn render(t: &Token) -> String {
    let f = FileFormat {
        access_token: Some(t.access_token.expose().to_string()),
        expiry_time: Some(ist::naive_string(&t.expires_at)),
        expires_at: Some(ist::to_ist(&t.expires_at).to_rfc3339()),
        client_id: t.client_id.clone(),
        obtained_at: t.obtained_at.map(|o| o.to_rfc3339()),
        source: t.source,
    };
    // Serialising plain strings cannot fail; an empty object would be caught as corrupt on load.
    let mut s = serde_json::to_string_pretty(&f).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Token, String> {
    let f: FileFormat = serde_json::from_slice(bytes).map_err(|e| format!("not a token file: {e}"))?;
    let token = f.access_token.filter(|t| !t.trim().is_empty()).ok_or("no access_token")?;
    let rfc = |s: &str| DateTime::parse_from_rfc3339(s).ok();
    let expires_at: Option<DateTime<FixedOffset>> = f
        .expires_at
        .as_deref()
        .and_then(rfc)
        .or_else(|| f.expiry_time.as_deref().and_then(ist::parse_naive_ist))
        .or_else(|| crate::dhan::jwt::decode(&token)?.expires_at().map(|t| ist::to_ist(&t)));
    let expires_at = expires_at.ok_or("no readable expiry_time")?;
    Ok(Token {
        access_token: Secret::new(token),
        expires_at,
        client_id: f.client_id,
        obtained_at: f.obtained_at.as_deref().and_then(rfc),
        source: f.source,
    })
}

#[cfg(test)]
mod tests;
