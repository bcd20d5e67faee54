//! `GET /events`: Server-Sent Events that tell any program, in any language, that a new token is
//! in hand, so a long-running process swaps it in instead of dying with the token it read at start.
//!
//! Every token [`Keeper::accept`](crate::lifecycle::Keeper) takes is published here once, as an
//! `event: token` whose data names the client id, the expiry, the source and a generation number;
//! never the token itself (a reader fetches `GET /token`). The stream needs the same bearer as
//! `/token`. Readers connect first, then fetch `/token`: every token accepted after the connection
//! arrives as an event, so nothing falls between the two.
//!
//! Why the pieces look the way they do:
//! - Event ids are `<boot>-<generation>`, `boot` being random per process; a new stream starts
//!   with the latest id (and no data). A reader that reconnects with `Last-Event-ID` (the
//!   loopback endpoint closes every connection after a while) gets the events it missed from a
//!   small ring, and a reader
//!   whose id is from another run of the keeper, or too old for the ring, gets `event: resync`
//!   (fetch `/token` again) instead of a silent gap.
//! - Publishing is a `tokio::sync::broadcast` send: it never waits for a reader. A reader that
//!   falls more than the channel's capacity behind gets `event: resync` and carries on.
//! - At most [`MAX_STREAMS`] streams are open at once; more get 503, so forgotten readers cannot
//!   exhaust the process. Streams end when the keeper shuts down, so they never hold up SIGTERM.
//! - A `: keep-alive` comment every [`KEEP_ALIVE`] keeps proxies from timing the stream out and
//!   lets the server notice a reader that vanished.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use tokio_util::sync::CancellationToken;

use crate::ist;
use crate::lifecycle::Keeper;
use crate::token::Token;

/// The most `/events` streams open at once.
pub const MAX_STREAMS: usize = 32;
/// How many recent events a reconnecting reader can catch up on.
pub const RING: usize = 32;
/// How far a reader may fall behind before it is told to resync.
const CHANNEL: usize = 16;
/// How often an idle stream gets a comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a `token` event says (serialized as its JSON data). No secret in here.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenEvent {
    /// Counts tokens accepted by this run of the keeper, from 1.
    pub generation: u64,
    /// Whose account the token opens.
    pub client_id: String,
    /// When it dies (RFC 3339, IST).
    pub expires_at: String,
    /// When it dies, naive IST like the token file's `expiry_time`.
    pub expiry_time: String,
    /// How it was obtained (`totp`, `renew`, `consent`, `manual`).
    pub source: String,
    /// When the keeper got it (RFC 3339, IST).
    pub obtained_at: Option<String>,
}

/// The publishing side: a broadcast channel, the recent events, and the stream limit.
#[derive(Debug)]
pub struct Events {
    boot: String,
    tx: broadcast::Sender<TokenEvent>,
    ring: Mutex<VecDeque<TokenEvent>>,
    streams: Arc<Semaphore>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new(MAX_STREAMS)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a reconnecting reader stands.
#[derive(Debug, PartialEq, Eq)]
enum Resume {
    /// No `Last-Event-ID`: only what happens from now on.
    Fresh,
    /// These events were missed; send them first.
    Replay(Vec<TokenEvent>),
    /// The id is unknown (another run, too old, garbled): the reader must re-fetch `/token`.
    Resync,
}

/// Decides what a reader presenting `last_id` is owed, given this run's `boot` and `ring`
/// (oldest first, generations consecutive).
fn resume(last_id: Option<&str>, boot: &str, ring: &VecDeque<TokenEvent>) -> Resume {
    let Some(last_id) = last_id.map(str::trim).filter(|s| !s.is_empty()) else { return Resume::Fresh };
    let Some(generation) = last_id.split_once('-').filter(|(b, _)| *b == boot).and_then(|(_, g)| g.parse::<u64>().ok())
    else {
        return Resume::Resync;
    };
    let latest = ring.back().map_or(0, |e| e.generation);
    let oldest = ring.front().map_or(1, |e| e.generation);
    if generation > latest || generation + 1 < oldest {
        return Resume::Resync;
    }
    Resume::Replay(ring.iter().filter(|e| e.generation > generation).cloned().collect())
}

impl Events {
    /// Events with room for `max_streams` readers.
    pub fn new(max_streams: usize) -> Self {
        let (tx, _) = broadcast::channel(CHANNEL);
        Self {
            boot: format!("{:08x}", fastrand::u32(..)),
            tx,
            ring: Mutex::new(VecDeque::with_capacity(RING)),
            streams: Arc::new(Semaphore::new(max_streams)),
        }
    }

    /// Announces a newly accepted token. Never waits for readers.
    pub fn publish(&self, token: &Token, configured_client_id: &str) {
        let mut ring = lock(&self.ring);
        let event = TokenEvent {
            generation: ring.back().map_or(1, |e| e.generation + 1),
            client_id: token.client_id.clone().unwrap_or_else(|| configured_client_id.to_string()),
            expires_at: ist::to_ist(&token.expires_at).to_rfc3339(),
            expiry_time: ist::naive_string(&token.expires_at),
            source: token.source.map_or("unknown", |s| s.as_str()).to_string(),
            obtained_at: token.obtained_at.map(|t| t.to_rfc3339()),
        };
        if ring.len() == RING {
            ring.pop_front();
        }
        ring.push_back(event.clone());
        // Sent under the ring's lock, so a reader subscribing under it sees each event exactly
        // once: in its snapshot of the ring or on its receiver. An error only means no readers.
        let _ = self.tx.send(event);
    }

    /// The id of the latest event of this run (`<boot>-0` before the first).
    pub fn latest_id(&self) -> String {
        self.id(lock(&self.ring).back().map_or(0, |e| e.generation))
    }

    fn id(&self, generation: u64) -> String {
        format!("{}-{generation}", self.boot)
    }

    fn token_event(&self, e: &TokenEvent) -> Event {
        let data = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
        Event::default().event("token").id(self.id(e.generation)).data(data)
    }

    fn resync_event(&self, why: &str) -> Event {
        let data = serde_json::json!({ "reason": why, "latest_id": self.latest_id() }).to_string();
        Event::default().event("resync").id(self.latest_id()).data(data)
    }
}

/// What one stream is doing between events.
struct Reader {
    keeper: Arc<Keeper>,
    pending: VecDeque<Event>,
    rx: broadcast::Receiver<TokenEvent>,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
}

/// One `/events` stream of `k`'s new tokens. The caller has checked the `/token` bearer
/// ([`crate::serve::bearer_refusal`]).
pub(crate) async fn stream(k: Arc<Keeper>, headers: HeaderMap, shutdown: CancellationToken) -> Response {
    let Ok(permit) = Arc::clone(&k.events().streams).try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            format!("too many open /events streams (limit {MAX_STREAMS}); close one and retry\n"),
        )
            .into_response();
    };
    let last_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let (rx, owed, latest) = {
        let ring = lock(&k.events().ring);
        let latest = ring.back().map_or(0, |e| e.generation);
        (k.events().tx.subscribe(), resume(last_id, &k.events().boot, &ring), latest)
    };
    let hello = Event::default().retry(Duration::from_secs(1)).comment("dhan-keeper events");
    let mut pending = VecDeque::new();
    match owed {
        // The id (with no data) sets the reader's Last-Event-ID, so a reader cut off before the
        // first token event still resumes without a gap.
        Resume::Fresh => pending.push_back(hello.id(k.events().id(latest))),
        // No id here: a reader cut off mid-replay must resume from where it really is.
        Resume::Replay(missed) => {
            pending.push_back(hello);
            pending.extend(missed.iter().map(|e| k.events().token_event(e)));
        }
        Resume::Resync => {
            pending.push_back(hello);
            pending.push_back(k.events().resync_event("unknown Last-Event-ID"));
        }
    }
    let reader = Reader { keeper: k, pending, rx, shutdown, _permit: permit };
    let events = futures_util::stream::unfold(reader, |mut r| async move {
        if let Some(e) = r.pending.pop_front() {
            return Some((Ok::<_, Infallible>(e), r));
        }
        let next = tokio::select! {
            () = r.shutdown.cancelled() => return None,
            next = r.rx.recv() => next,
        };
        let event = match next {
            Ok(e) => r.keeper.events().token_event(&e),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!(missed = n, "an /events reader fell behind; telling it to resync");
                r.keeper.events().resync_event("reader fell behind")
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), r))
    });
    let mut response =
        Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(generation: u64) -> TokenEvent {
        TokenEvent {
            generation,
            client_id: "1000000001".into(),
            expires_at: String::new(),
            expiry_time: String::new(),
            source: "totp".into(),
            obtained_at: None,
        }
    }

    fn ring(gens: std::ops::RangeInclusive<u64>) -> VecDeque<TokenEvent> {
        gens.map(ev).collect()
    }

    fn gens(r: Resume) -> Vec<u64> {
        match r {
            Resume::Replay(v) => v.iter().map(|e| e.generation).collect(),
            other => panic!("expected a replay, got {other:?}"),
        }
    }

    #[test]
    fn resume_table() {
        let r = ring(5..=9);
        assert_eq!(resume(None, "b", &r), Resume::Fresh);
        assert_eq!(resume(Some(" "), "b", &r), Resume::Fresh);
        assert_eq!(gens(resume(Some("b-9"), "b", &r)), Vec::<u64>::new());
        assert_eq!(gens(resume(Some("b-7"), "b", &r)), vec![8, 9]);
        // The one just before the ring's oldest: everything in the ring is owed, nothing lost.
        assert_eq!(gens(resume(Some("b-4"), "b", &r)), vec![5, 6, 7, 8, 9]);
        assert_eq!(resume(Some("b-3"), "b", &r), Resume::Resync, "too old: events were lost");
        assert_eq!(resume(Some("b-10"), "b", &r), Resume::Resync, "from the future");
        assert_eq!(resume(Some("a-7"), "b", &r), Resume::Resync, "another run of the keeper");
        assert_eq!(resume(Some("b-x"), "b", &r), Resume::Resync);
        assert_eq!(resume(Some("garbage"), "b", &r), Resume::Resync);
        // Before any token in this run.
        assert_eq!(gens(resume(Some("b-0"), "b", &VecDeque::new())), Vec::<u64>::new());
        assert_eq!(resume(Some("b-1"), "b", &VecDeque::new()), Resume::Resync);
    }

    #[test]
    fn publish_numbers_generations_and_bounds_the_ring() {
        let events = Events::new(1);
        let token = Token {
            access_token: crate::secret::Secret::new("eyJ.secret.token"),
            expires_at: chrono::DateTime::parse_from_rfc3339("2026-11-26T08:30:00+05:30").expect("time"),
            client_id: None,
            obtained_at: None,
            source: Some(crate::token::TokenSource::Renew),
        };
        let mut rx = events.tx.subscribe();
        for _ in 0..(RING + 3) {
            events.publish(&token, "1000000001");
        }
        let ring = lock(&events.ring);
        assert_eq!(ring.len(), RING);
        assert_eq!(ring.back().map(|e| e.generation), Some((RING + 3) as u64));
        let first = rx.try_recv();
        assert!(matches!(first, Err(broadcast::error::TryRecvError::Lagged(_))), "{first:?}");
        let e = ring.back().cloned().expect("event");
        assert_eq!(e.client_id, "1000000001");
        assert_eq!(e.source, "renew");
        assert_eq!(e.expiry_time, "2026-11-26T08:30:00");
        assert!(!serde_json::to_string(&e).expect("json").contains("secret"));
    }
}
