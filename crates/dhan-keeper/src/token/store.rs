//! `dhan_token.json`: atomic, private, and readable by programs written for the prototype.
//!
//! The prototype wrote `{"access_token": ..., "expiry_time": "2026-11-26T08:30:00"}` (naive IST);
//! trading programs read exactly those keys, so they stay, unchanged in meaning. The richer keys
//! (`expires_at` with its offset, `client_id`, `obtained_at`, `source`) sit beside them.
//!
//! A write goes to a fresh temp file in the same directory created with mode 0600, is fsynced,
//! renamed over the target, and the directory is fsynced: a reader (or a `kill -9`) sees the old
//! file or the new one, never half of one.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use super::{Token, TokenSource};
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

/// Loads and saves the token file.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

impl TokenStore {
    /// A store for `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The token file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved token; `Ok(None)` when there is no file.
    pub fn load(&self) -> Result<Option<Token>, StoreError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io { op: "read", path: self.path.clone(), source });
            }
        };
        parse(&bytes).map(Some).map_err(|reason| StoreError::Corrupt { path: self.path.clone(), reason })
    }

    /// Replaces the file with `token`, atomically and with mode 0600.
    pub fn save(&self, token: &Token) -> Result<(), StoreError> {
        write_atomic(&self.path, render(token).as_bytes(), true).map_err(|(op, source)| StoreError::Io {
            op,
            path: self.path.clone(),
            source,
        })
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
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}-{:08x}", std::process::id(), fastrand::u32(..)));
    let result = (|| {
        let mut f = open_private(&tmp).map_err(|e| ("create a temp file beside", e))?;
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
mod tests {
    use super::*;

    fn sample() -> Token {
        Token {
            access_token: Secret::new("eyJ.sample.token"),
            expires_at: ist::parse_naive_ist("2026-11-26T08:30:00").expect("valid"),
            client_id: Some("1000000001".into()),
            obtained_at: DateTime::parse_from_rfc3339("2026-11-25T08:30:00+05:30").ok(),
            source: Some(TokenSource::Totp),
        }
    }

    #[test]
    fn file_keeps_the_prototype_keys_and_adds_offsets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TokenStore::new(dir.path().join("dhan_token.json"));
        store.save(&sample()).expect("saves");
        let v: serde_json::Value = serde_json::from_slice(&fs::read(store.path()).expect("reads")).expect("json");
        assert_eq!(v["access_token"], "eyJ.sample.token");
        assert_eq!(v["expiry_time"], "2026-11-26T08:30:00");
        assert_eq!(v["expires_at"], "2026-11-26T08:30:00+05:30");
        assert_eq!(v["source"], "totp");
        assert_eq!(v["obtained_at"], "2026-11-25T08:30:00+05:30");
        let back = store.load().expect("loads").expect("present");
        assert_eq!(back.expires_at, sample().expires_at);
        assert_eq!(back.access_token, sample().access_token);
    }

    #[test]
    fn a_prototype_file_is_read_with_its_naive_time_as_ist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TokenStore::new(dir.path().join("dhan_token.json"));
        fs::write(store.path(), r#"{"access_token": "abc", "expiry_time": "2026-11-26T08:30:00"}"#).expect("write");
        let t = store.load().expect("loads").expect("present");
        assert_eq!(t.expires_at.to_rfc3339(), "2026-11-26T08:30:00+05:30");
        assert_eq!(t.source, None);
    }

    #[test]
    fn missing_is_none_and_corrupt_is_named_then_set_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TokenStore::new(dir.path().join("dhan_token.json"));
        assert!(store.load().expect("ok").is_none());
        for junk in ["", "{", "[]", r#"{"access_token": null}"#, r#"{"access_token":"x","expiry_time":"soon"}"#] {
            fs::write(store.path(), junk).expect("write");
            match store.load() {
                Err(StoreError::Corrupt { path, .. }) => assert_eq!(path, store.path()),
                other => panic!("{junk:?} gave {other:?}"),
            }
        }
        let now = DateTime::parse_from_rfc3339("2026-11-25T10:15:00+05:30").expect("valid").with_timezone(&Utc);
        let aside = store.set_aside(now).expect("renames");
        assert!(aside.to_string_lossy().ends_with("dhan_token.json.corrupt-20261125T101500"));
        assert!(store.load().expect("ok").is_none());
    }
}
