//! Watches the token file's directory so a deleted or replaced token file is written back within
//! a second, not at the loop's next pass (up to 30 s later).
//!
//! The daemon owns the token file: when something deletes it, overwrites it or swaps in another
//! token, the watcher wakes the lifecycle loop, whose first act ([`Keeper::wake`] →
//! `heal_file`) is to put the current token back. The `notify` crate (inotify on Linux, FSEvents
//! or kqueue elsewhere) is the maintained choice for this; if the platform refuses a watch (e.g.
//! the inotify limit is reached), the daemon says so once and relies on the loop as before.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio_util::sync::CancellationToken;

use crate::lifecycle::Keeper;

/// Whether `event` concerns `file` (by name, in the watched directory) and may have changed it.
pub(crate) fn touches(kind: &EventKind, paths: &[PathBuf], file: &Path) -> bool {
    let changes = matches!(kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any);
    changes && paths.iter().any(|p| p.file_name() == file.file_name())
}

/// Runs until `shutdown`, waking `keeper` whenever the token file changes on disk.
pub(crate) async fn run(keeper: Arc<Keeper>, shutdown: CancellationToken) {
    let file = keeper.token_path().to_path_buf();
    let Some(dir) = file.parent().map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d }) else {
        return;
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let target = file.clone();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res
            && touches(&ev.kind, &ev.paths, &target)
        {
            let _ = tx.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the token directory; a deleted token file is restored within 30 s instead of at once");
            return;
        }
    };
    if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the token directory; a deleted token file is restored within 30 s instead of at once");
        return;
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = rx.recv() => match got {
                Some(()) => keeper.wake(),
                None => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RemoveKind};

    #[test]
    fn only_changes_to_the_token_file_wake_the_keeper() {
        let file = Path::new("/srv/dk/dhan_token.json");
        let token = vec![PathBuf::from("/srv/dk/dhan_token.json")];
        let state = vec![PathBuf::from("/srv/dk/dhan_token.json.state")];
        assert!(touches(&EventKind::Remove(RemoveKind::File), &token, file));
        assert!(touches(&EventKind::Create(CreateKind::File), &token, file));
        assert!(touches(&EventKind::Modify(ModifyKind::Any), &token, file));
        assert!(!touches(&EventKind::Modify(ModifyKind::Any), &state, file), "the state file is written all the time");
        assert!(!touches(&EventKind::Access(notify::event::AccessKind::Any), &token, file), "reading is not a change");
    }
}
