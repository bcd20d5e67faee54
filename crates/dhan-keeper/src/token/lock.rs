//! The advisory lock that keeps two dhan-keeper processes from minting at once.
//!
//! A mint kills the previous token, so two processes minting would each kill the other's token.
//! Whoever mints holds `dhan_token.json.lock` (an OS file lock, released by the kernel even on
//! `kill -9`), and writes its pid and role into it so a refused second process can name the holder.
//!
//! The lock sits in the token's directory, which another user might be able to reach: it is
//! opened without following a symlink (as root that would truncate any file) and without
//! blocking (a FIFO), it must be a regular file this user owns, the directory itself must not be
//! writable by others ([`crate::harden::unsafe_dir`]), and the holder's note is clipped and
//! stripped of control characters before it is printed.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("another dhan-keeper holds the lock {path} ({holder}); stop it first, or wait for it to finish")]
    Held {
        /// The lock file.
        path: PathBuf,
        /// What the holder wrote about itself.
        holder: String,
    },
    /// The lock file or its directory is not safe to use.
    #[error("refusing the lock file {path}: {reason}")]
    Unsafe {
        /// The lock file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
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
        let unsafe_ = |reason| LockError::Unsafe { path: path.to_path_buf(), reason };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if let Some(reason) = crate::harden::unsafe_dir(dir) {
            return Err(unsafe_(reason));
        }
        let mut file = match open_private(path) {
            Ok(f) => f,
            Err(e) if is_symlink(path) => {
                return Err(unsafe_(format!("it is a symbolic link ({e}); remove it, dhan-keeper creates its own")));
            }
            Err(e) => return Err(io(e)),
        };
        if let Some(reason) = not_ours(&file) {
            return Err(unsafe_(reason));
        }
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut note = Vec::new();
                let _ = (&mut file).take(256).read_to_end(&mut note);
                let holder = crate::harden::sanitize(String::from_utf8_lossy(&note).trim(), 120);
                let holder = if holder.is_empty() { "holder unknown".to_string() } else { holder };
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
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Why an opened lock file is not one to trust: not a regular file, or another user's.
fn not_ours(file: &File) -> Option<String> {
    if let Err(e) = crate::harden::require_regular(file) {
        return Some(format!("{e}; remove it, dhan-keeper creates its own"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let owner = file.metadata().ok()?.uid();
        let me = rustix::process::geteuid().as_raw();
        if owner != me {
            return Some(format!(
                "it belongs to another user (uid {owner}, we are {me}); remove it, dhan-keeper creates its own"
            ));
        }
    }
    None
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

    #[test]
    fn a_symlinked_lock_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("precious");
        std::fs::write(&victim, "keep me").expect("write");
        let path = dir.path().join("dhan_token.json.lock");
        std::os::unix::fs::symlink(&victim, &path).expect("symlink");
        match InstanceLock::acquire(&path, "run") {
            Err(LockError::Unsafe { reason, .. }) => assert!(reason.contains("symbolic link"), "{reason}"),
            other => panic!("expected Unsafe, got {other:?}"),
        }
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "keep me");
    }

    #[test]
    fn a_fifo_lock_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dhan_token.json.lock");
        assert!(std::process::Command::new("mkfifo").arg(&path).status().expect("mkfifo").success());
        match InstanceLock::acquire(&path, "run") {
            Err(LockError::Unsafe { reason, .. }) => assert!(reason.contains("not a regular file"), "{reason}"),
            other => panic!("expected Unsafe, got {other:?}"),
        }
    }
}
