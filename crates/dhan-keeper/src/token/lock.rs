//! The advisory lock that keeps two dhan-keeper processes from minting at once.
//!
//! A mint kills the previous token, so two processes minting would each kill the other's token.
//! Whoever mints holds `dhan_token.json.lock` (an OS file lock, released by the kernel even on
//! `kill -9`), and writes its pid and role into it so a refused second process can name the holder.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("the lock {path} is held by {holder}; stop that process first, or wait for it to finish")]
    Held {
        /// The lock file.
        path: PathBuf,
        /// What the holder wrote about itself.
        holder: String,
    },
    /// The lock file could not be opened.
    #[error("cannot open lock file {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock without waiting. `role` says what the holder is doing (`run`, `refresh`).
    pub fn acquire(path: &Path, role: &str) -> Result<Self, LockError> {
        let io = |source| LockError::Io { path: path.to_path_buf(), source };
        let mut file = open_private(path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() { "holder unknown".to_string() } else { holder.to_string() };
                return Err(LockError::Held { path: path.to_path_buf(), holder });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Only now that we hold it may we replace the previous holder's note.
        let note = format!("pid {} running `dhan-keeper {role}`", std::process::id());
        let _ =
            file.set_len(0).and_then(|()| file.seek(SeekFrom::Start(0))).and_then(|_| file.write_all(note.as_bytes()));
        Ok(Self { _file: file, path: path.to_path_buf() })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dhan_token.json.lock");
        let first = InstanceLock::acquire(&path, "run").expect("first");
        match InstanceLock::acquire(&path, "refresh") {
            Err(LockError::Held { holder, .. }) => {
                assert!(holder.contains(&std::process::id().to_string()), "{holder}");
                assert!(holder.contains("run"), "{holder}");
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        InstanceLock::acquire(&path, "refresh").expect("free again");
    }
}
