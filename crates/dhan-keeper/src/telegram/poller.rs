//! The long-polling loop: `getMe` until Telegram answers, register the commands, then
//! `getUpdates` forever, handing each update to a handler task.
//!
//! Offsets are saved (through the caller's `save_offset`, once per batch) before an update is
//! handled, so a restart, even after kill -9, never handles an update twice; the next `getUpdates` confirms it
//! to Telegram as well. Failures back off with jitter up to a minute (429 waits `retry_after`);
//! a 409 means another process polls this bot and is reported as such; an update that does not
//! decode is skipped. Handlers run as tracked tasks (shutdown waits for them, with a bound), and
//! the next long poll waits up to [`ANSWER_FIRST`] for this batch's handlers, so a quick reply
//! goes out before the next `getUpdates` is written.
//!
//! A handler that panics: the release build has `panic = "abort"`, so the process stops (no
//! half-handled state lives on; the service manager restarts it, and the saved offset keeps the
//! update from being handled again). Handlers are written not to panic on any input (the property
//! tests feed them arbitrary updates); debug builds log a panicking handler and go on.

use std::future::Future;
use std::sync::Arc;

use frankenstein::types::BotCommand;
use tokio_util::sync::CancellationToken;

use super::client::{BotClient, LONG_POLL, TgError};

/// How long the next long poll waits for the handlers of the batch before it.
pub const ANSWER_FIRST: std::time::Duration = std::time::Duration::from_millis(250);
use super::outbox::retry_delay;
use super::types::{Update, User};

/// Retries `getMe` until it succeeds; `None` on shutdown. Telegram being down is logged, never fatal.
pub async fn wait_for_me(client: &BotClient, shutdown: &CancellationToken) -> Option<User> {
    let mut failures = 0;
    loop {
        match client.get_me().await {
            Ok(me) => return Some(me),
            Err(e) => {
                failures += 1;
                let wait = e.retry_after().unwrap_or_else(|| retry_delay(failures));
                if failures == 1 || failures.is_multiple_of(10) {
                    tracing::warn!(error = %e, retry_in = ?wait, "Telegram is not answering getMe; token upkeep continues without it");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Registers `commands` with `setMyCommands` (best effort: a failure is logged).
pub async fn register_commands(client: &BotClient, commands: &[(&str, &str)]) {
    let list = commands
        .iter()
        .map(|(c, d)| BotCommand::builder().command(c.to_string()).description(d.to_string()).build())
        .collect();
    if let Err(e) = client.set_my_commands(list).await {
        tracing::warn!(error = %e, "could not register the command list with Telegram");
    }
}

/// Polls until `shutdown`, starting at `offset`; `save_offset` is called with each next offset.
pub async fn poll<H, Fut>(
    client: &BotClient,
    mut offset: i64,
    save_offset: impl Fn(i64),
    handler: Arc<H>,
    tasks: &tokio_util::task::TaskTracker,
    shutdown: &CancellationToken,
) where
    H: Fn(Update) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut failures = 0u32;
    // The highest id handled by this process: at the top of the id range the offset cannot move
    // past an update, so Telegram keeps re-sending it, and this keeps it from being handled again.
    let mut handled: Option<i64> = None;
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = client.get_updates(offset, LONG_POLL) => r,
        };
        let updates = match batch {
            Ok(u) => {
                if failures > 0 {
                    tracing::info!("Telegram polling is back");
                }
                failures = 0;
                u
            }
            Err(e) => {
                failures += 1;
                let wait = e.retry_after().unwrap_or_else(|| retry_delay(failures));
                report(&e, failures);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
        };
        // The whole batch's offset is saved once, before any of it is handled (handlers run
        // after this loop yields anyway): one state write per batch, not per update, so a flood
        // of updates costs no disk round trip each.
        let fresh = fresh_updates(updates, &mut offset, &mut handled);
        if !fresh.is_empty() {
            save_offset(offset);
        }
        let batch = spawn_handlers(fresh, &handler, tasks);
        answer_first(batch, tasks).await;
    }
}

/// The updates of a batch not handled yet, advancing `offset` past them. At the top of the id
/// range the offset cannot move past an update, so Telegram keeps re-sending it; `handled`
/// (the highest id this process handled) keeps it from being handled again.
fn fresh_updates(
    updates: Vec<serde_json::Value>,
    offset: &mut i64,
    handled: &mut Option<i64>,
) -> Vec<(i64, serde_json::Value)> {
    let mut fresh = Vec::with_capacity(updates.len());
    for raw in updates {
        let Some(id) = raw.get("update_id").and_then(serde_json::Value::as_i64) else {
            tracing::warn!("Telegram sent an update without an update_id; skipped");
            continue;
        };
        if id < *offset || handled.is_some_and(|h| id <= h) {
            continue; // already handled (Telegram re-sent it before our confirmation landed)
        }
        *handled = Some(id);
        *offset = id.saturating_add(1);
        fresh.push((id, raw));
    }
    fresh
}

/// Starts a tracked handler task per update that decodes; one that does not is skipped.
fn spawn_handlers<H, Fut>(
    fresh: Vec<(i64, serde_json::Value)>,
    handler: &Arc<H>,
    tasks: &tokio_util::task::TaskTracker,
) -> Vec<(i64, tokio::task::JoinHandle<()>)>
where
    H: Fn(Update) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut batch = Vec::with_capacity(fresh.len());
    for (id, raw) in fresh {
        match BotClient::decode(raw) {
            Ok(update) => {
                let handler = Arc::clone(handler);
                batch.push((id, tasks.spawn(async move { handler(update).await })));
            }
            Err(e) => tracing::warn!(update_id = id, error = %e, "skipped an update that does not decode"),
        }
    }
    batch
}

/// A batch larger than this is a flood (strangers, a backlog after an outage): its handlers run
/// side by side and the poller does not wait for them.
const ANSWER_FIRST_MAX_BATCH: usize = 8;

/// Waits up to [`ANSWER_FIRST`] for a small batch's handlers, so a reply is on its way before
/// the next long poll; the slow ones (an `/account` asking Dhan) go on as tracked tasks.
async fn answer_first(batch: Vec<(i64, tokio::task::JoinHandle<()>)>, tasks: &tokio_util::task::TaskTracker) {
    let deadline = if batch.len() <= ANSWER_FIRST_MAX_BATCH {
        tokio::time::Instant::now() + ANSWER_FIRST
    } else {
        tokio::time::Instant::now()
    };
    for (id, mut handle) in batch {
        match tokio::time::timeout_at(deadline, &mut handle).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(update_id = id, error = %e, "an update handler failed; polling continues"),
            Err(_) => {
                tasks.spawn(async move {
                    if let Err(e) = handle.await {
                        tracing::error!(update_id = id, error = %e, "an update handler failed; polling continues");
                    }
                });
            }
        }
    }
}

fn report(e: &TgError, failures: u32) {
    if e.is_conflict() {
        tracing::error!(
            error = %e,
            "another process is polling this bot (409 Conflict): stop the other dhan-keeper or bot using this \
             telegram_bot_token, or give this one its own bot; retrying"
        );
    } else if matches!(e, TgError::Api { code: 401 | 404, .. }) {
        tracing::error!(error = %e, "Telegram rejected the bot token; check telegram_bot_token (BotFather → /token)");
    } else if failures == 1 || failures.is_multiple_of(10) {
        tracing::warn!(error = %e, failures, "Telegram polling failed; backing off");
    }
}
