//! Defences against other local users and against this process's own leftovers.
//!
//! The daemon holds the PIN, the TOTP secret and the bot token in memory, and runs next to users
//! who should not be able to make the token expire. So: no core dumps (they would hold every
//! secret in plain text); as many descriptors as the hard limit allows, so that what the HTTP
//! endpoint cannot take (see [`crate::serve`]) is left for Dhan and the token file; files that
//! another user may have placed (token, state, config, `*_file` secrets, the lock) are opened
//! without blocking, must be regular files, and are read up to a cap; directories that other
//! users can write to are refused for the token, as sshd refuses them for `authorized_keys`; and
//! text that came from such a file is clipped and stripped of control characters before it is
//! printed, so it cannot rewrite the terminal.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::path::Path;

/// What [`process_limits`] did, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Core dumps are off (soft and hard limit 0).
    pub core_off: bool,
    /// The soft descriptor limit now in force, if known.
    pub nofile: Option<u64>,
}

/// Turns core dumps off and raises the soft descriptor limit to the hard one (at most 65,536).
/// Call once, first thing. Failures are reported in the result, never fatal.
pub fn process_limits() -> Limits {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let core_off = setrlimit(Resource::Core, Rlimit { current: Some(0), maximum: Some(0) }).is_ok()
            // Not dumpable: no core file either way, and /proc/<pid>/environ (the secrets given as
            // DHAN_KEEPER_* variables) becomes unreadable to other processes of the same user,
            // the on_refresh hook included.
            && rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable).is_ok();
        let now = getrlimit(Resource::Nofile);
        let want = match now.maximum {
            Some(hard) => hard.min(65_536),
            None => 65_536,
        };
        let nofile = match now.current {
            Some(soft) if soft < want => {
                let raised = Rlimit { current: Some(want), maximum: now.maximum };
                if setrlimit(Resource::Nofile, raised).is_ok() { Some(want) } else { Some(soft) }
            }
            other => other,
        };
        Limits { core_off, nofile }
    }
    #[cfg(not(unix))]
    {
        Limits { core_off: false, nofile: None }
    }
}

/// Reads a file that someone else may have replaced: never blocks (a FIFO is refused, not
/// waited on), only regular files, at most `limit` bytes. `NotFound` passes through unchanged.
pub(crate) fn read_capped(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = open_nonblocking(path, false)?;
    require_regular(&file)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("it is larger than {} KiB, too large to be what it should be", limit / 1024),
        ));
    }
    Ok(bytes)
}

/// Opens for reading without blocking; with `nofollow`, a symlink is refused.
pub(crate) fn open_nonblocking(path: &Path, nofollow: bool) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use rustix::fs::OFlags;
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = OFlags::NONBLOCK;
        if nofollow {
            flags |= OFlags::NOFOLLOW;
        }
        opts.custom_flags(flags.bits() as i32);
    }
    #[cfg(not(unix))]
    let _ = nofollow;
    opts.open(path)
}

/// Fails unless `file` is a regular file.
pub(crate) fn require_regular(file: &File) -> std::io::Result<()> {
    let meta = file.metadata()?;
    if meta.is_file() {
        return Ok(());
    }
    let kind = if meta.is_dir() { "a directory" } else { "not a regular file (a FIFO, socket or device?)" };
    Err(std::io::Error::new(ErrorKind::InvalidData, format!("it is {kind}")))
}

/// Refuses a directory other users could write to, as sshd's `StrictModes` does: writable by
/// group or others without the sticky bit, or owned by another user than us or root. Another
/// user there could hold our lock, plant a token file we cannot replace, or swap the token file
/// for a FIFO. Returns the reason, naming the directory and the fix.
#[cfg(unix)]
pub(crate) fn unsafe_dir(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).ok()?;
    let me = rustix::process::geteuid().as_raw();
    let mode = meta.mode();
    let shown = dir.display();
    if meta.uid() != me && meta.uid() != 0 {
        return Some(format!(
            "the token directory {shown} belongs to another user (uid {}), who could replace or read the token; \
             keep token_file in a directory owned by this user (uid {me}) or root",
            meta.uid()
        ));
    }
    // The sticky bit is no excuse (unlike for deleting): in a shared directory such as /tmp
    // another user can create the token file before the daemon does and hand programs their token.
    if mode & 0o022 != 0 {
        return Some(format!(
            "the token directory {shown} is writable by other users (mode {:o}), who could plant a token file or \
             take its lock; keep token_file in a directory of its own (mkdir -m 700 ~/dhan-keeper) or run: \
             chmod go-w {shown}",
            mode & 0o7777
        ));
    }
    None
}

#[cfg(not(unix))]
pub(crate) fn unsafe_dir(_: &Path) -> Option<String> {
    None
}

/// Text from a file another user may control, fit to print: control characters (terminal
/// escapes, newlines) become spaces and it is cut to `max` characters.
pub(crate) fn sanitize(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_removes_escapes_and_clips() {
        assert_eq!(sanitize("pid 1 \u{1b}[2J\u{1b}]0;owned\u{7}", 100), "pid 1  [2J ]0;owned ");
        assert_eq!(sanitize("abcdef", 3), "abc…");
    }

    #[test]
    fn read_capped_refuses_big_files_and_fifos_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2048]).expect("write");
        assert!(read_capped(&big, 1024).is_err());
        assert_eq!(read_capped(&big, 4096).expect("fits").len(), 2048);
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(made.success());
        let e = read_capped(&fifo, 1024).expect_err("a FIFO is refused");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert_eq!(read_capped(&dir.path().join("none"), 10).expect_err("missing").kind(), ErrorKind::NotFound);
    }

    #[test]
    fn directories_others_can_write_are_refused_sticky_or_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let set = |m| std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(m)).expect("chmod");
        set(0o700);
        assert_eq!(unsafe_dir(dir.path()), None);
        set(0o777);
        assert!(unsafe_dir(dir.path()).is_some_and(|m| m.contains("chmod go-w")));
        set(0o1777);
        assert!(unsafe_dir(dir.path()).is_some(), "a sticky /tmp-like directory still lets others plant a file");
        set(0o770);
        assert!(unsafe_dir(dir.path()).is_some());
        set(0o750);
        assert_eq!(unsafe_dir(dir.path()), None);
    }
}
