//! `GET /events` over real sockets: the real binary announcing real rotations, resuming with
//! `Last-Event-ID`, refusing streams past the limit, and (in process, through `app::start`)
//! carrying on while a reader does not read at all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dhan_keeper::clock::{SharedClock, SystemClock};
use dhan_keeper::config::Config;
use dhan_keeper::events::MAX_STREAMS;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::daemon::{Stack, assert_clean, eventually, short_sim};
use crate::helpers::HTTP_TOKEN;

/// One parsed server-sent event.
#[derive(Debug, Clone)]
struct Sse {
    event: String,
    id: String,
    data: String,
}

impl Sse {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

/// Reads an SSE response chunk by chunk and splits it into events (comments are counted).
struct Stream {
    resp: reqwest::Response,
    buf: String,
    comments: usize,
    /// The last `id:` seen, as a browser's `EventSource` keeps it (ids without data count).
    last_id: Option<String>,
}

impl Stream {
    async fn open(url: &str, last_id: Option<&str>) -> reqwest::Response {
        let mut req = reqwest::Client::new().get(url).bearer_auth(HTTP_TOKEN);
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id);
        }
        req.send().await.expect("GET /events")
    }

    async fn connect(url: &str, last_id: Option<&str>) -> Self {
        let resp = Self::open(url, last_id).await;
        assert_eq!(resp.status(), 200, "GET /events");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Self { resp, buf: String::new(), comments: 0, last_id: None }
    }

    /// The next event, waiting at most `limit`.
    async fn next(&mut self, limit: Duration) -> Option<Sse> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut e = Sse { event: "message".into(), id: String::new(), data: String::new() };
                let mut any = false;
                for line in block.lines() {
                    if line.starts_with(':') {
                        self.comments += 1;
                    } else if let Some((k, v)) = line.split_once(':') {
                        any = true;
                        let v = v.strip_prefix(' ').unwrap_or(v);
                        match k {
                            "event" => e.event = v.into(),
                            "id" => {
                                e.id = v.into();
                                self.last_id = Some(v.into());
                            }
                            "data" => e.data.push_str(v),
                            _ => {}
                        }
                    }
                }
                if any && (e.event != "message" || !e.data.is_empty()) {
                    return Some(e);
                }
                continue;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(_) => return None,
                Err(_) => return None,
            }
        }
    }

    async fn next_token(&mut self) -> Sse {
        let e = self.next(Duration::from_secs(20)).await.expect("a token event within 20 s");
        assert_eq!(e.event, "token", "{e:?}");
        e
    }
}

fn generation(e: &Sse) -> u64 {
    e.json()["generation"].as_u64().expect("generation")
}

#[tokio::test]
async fn events_announce_rotations_without_the_token_and_resume_from_last_event_id() {
    let s = Stack::with_sim(short_sim(8), |_| {}).await;
    let d = s.start();
    let url = s.http("/events");
    eventually("the HTTP endpoint", || std::net::TcpStream::connect(("127.0.0.1", s.http_port)).ok()).await;

    // Same bearer as /token.
    let anon = reqwest::get(&url).await.expect("GET");
    assert_eq!(anon.status(), 401);
    let wrong = reqwest::Client::new().get(&url).bearer_auth("nope").send().await.expect("GET");
    assert_eq!(wrong.status(), 401);

    let mut stream = Stream::connect(&url, None).await;
    let first = stream.next_token().await;
    let data = first.json();
    assert_eq!(data["client_id"], "1000000001");
    assert!(["totp", "renew"].contains(&data["source"].as_str().unwrap_or_default()), "{data}");
    let g1 = generation(&first);
    assert!(first.id.ends_with(&format!("-{g1}")), "id {} names generation {g1}", first.id);
    // The event names the token a reader gets from /token right after.
    let second = stream.next_token().await;
    assert_eq!(generation(&second), g1 + 1, "one event per new token, numbered");
    let token: Value = reqwest::Client::new()
        .get(s.http("/token"))
        .bearer_auth(HTTP_TOKEN)
        .send()
        .await
        .expect("GET /token")
        .json()
        .await
        .expect("json");
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().expect("expires_at")).expect("rfc3339");
    assert!(
        at(&token["expires_at"]) >= at(&second.json()["expires_at"]),
        "/token holds the announced token or a newer one"
    );

    // Gone for two rotations, then back with Last-Event-ID: the missed events arrive at once.
    drop(stream);
    let mints = s.sim.mints();
    eventually("two rotations while the reader is away", || (s.sim.mints() >= mints + 2).then_some(())).await;
    let missed = s.sim.mints() - mints;
    let mut back = Stream::connect(&url, Some(&second.id)).await;
    let mut replayed = Vec::new();
    for _ in 0..missed {
        let e = back.next(Duration::from_millis(500)).await.expect("a replayed event arrives without waiting");
        assert_eq!(e.event, "token");
        replayed.push(generation(&e));
    }
    let expected: Vec<u64> = (g1 + 2..g1 + 2 + missed).collect();
    assert_eq!(replayed, expected, "the missed events, in order, no gap and no repeat");
    // After the replay it is live again.
    let live = back.next_token().await;
    assert_eq!(generation(&live), g1 + 2 + missed);

    // A fresh stream starts with the latest id, so a reader cut off before any event still
    // resumes without a gap.
    let mut probe = Stream::connect(&url, None).await;
    // The preamble comes at once; `next` reads it, then waits (briefly) for an event.
    let _ = probe.next(Duration::from_millis(200)).await;
    let start_id = probe.last_id.clone().expect("a fresh stream names the latest id before any event");
    drop(probe);
    let mints = s.sim.mints();
    eventually("a rotation while no reader is connected", || (s.sim.mints() > mints).then_some(())).await;
    let mut resumed = Stream::connect(&url, Some(&start_id)).await;
    let e = resumed.next(Duration::from_millis(500)).await.expect("the missed event, at once");
    assert_eq!(e.event, "token");
    assert_eq!(
        format!("{}-{}", start_id.rsplit_once('-').map(|(b, _)| b).unwrap_or_default(), generation(&e) - 1),
        start_id,
        "the event right after the id the fresh stream named"
    );
    drop(resumed);

    // An id from another run of the keeper (or too old) gets a resync, not a silent gap.
    let mut stranger = Stream::connect(&url, Some("0badc0de-3")).await;
    let e = stranger.next(Duration::from_secs(2)).await.expect("a resync event");
    assert_eq!(e.event, "resync", "{e:?}");
    let (boot, g) = e.id.rsplit_once('-').expect("id");
    assert!(live.id.starts_with(&format!("{boot}-")), "this run's id: {e:?}");
    assert!(g.parse::<u64>().expect("generation") >= generation(&live), "resync carries the latest id: {e:?}");

    // No token in any event.
    let tokens = s.sim.all_tokens();
    let extra: Vec<&str> = tokens.iter().map(String::as_str).collect();
    for e in [&first, &second, &live] {
        assert_clean(&e.data, &extra);
    }
    drop((back, stranger));
    let (code, _, _) = s.stop(d).await;
    assert_eq!(code, 0);
}

#[tokio::test]
async fn streams_are_bounded_and_do_not_hold_up_shutdown() {
    let s = Stack::new(|_| {}).await;
    let d = s.start();
    let url = s.http("/events");
    eventually("the HTTP endpoint", || std::net::TcpStream::connect(("127.0.0.1", s.http_port)).ok()).await;
    let mut open = Vec::new();
    for _ in 0..MAX_STREAMS {
        open.push(Stream::connect(&url, None).await);
    }
    let refused = Stream::open(&url, None).await;
    assert_eq!(refused.status(), 503);
    let body = refused.text().await.expect("body");
    assert!(body.contains(&format!("too many open /events streams (limit {MAX_STREAMS})")), "{body}");
    // The rest of the endpoint still answers.
    let health = reqwest::get(s.http("/healthz")).await.expect("healthz");
    assert!(health.status() == 200 || health.status() == 503);

    // A reader that goes away frees its place.
    open.pop();
    let freed = async {
        loop {
            let r = Stream::open(&url, None).await;
            if r.status() == 200 {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let again = tokio::time::timeout(Duration::from_secs(30), freed).await.expect("a place frees within 30 s");
    open.push(Stream { resp: again, buf: String::new(), comments: 0, last_id: None });

    // SIGTERM with every stream open: the streams end and the daemon exits promptly (stop asserts 10 s).
    let (code, elapsed, _) = s.stop(d).await;
    assert_eq!(code, 0);
    assert!(elapsed < Duration::from_secs(5), "shutdown took {elapsed:?} with streams open");
    for mut st in open {
        assert!(st.next(Duration::from_secs(5)).await.is_none(), "the stream ended");
    }
}

/// Opens `/events` on a raw socket and never reads from it.
async fn stalled_reader(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {HTTP_TOKEN}\r\nAccept: text/event-stream\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.expect("send request");
    sock
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_never_blocks_the_keeper_and_is_told_to_resync() {
    let s = Stack::new(|_| {}).await;
    let cfg = Config::load_with_env(Some(s.ws.config_path()), &|_| None).expect("config loads");
    let clock: SharedClock = Arc::new(SystemClock);
    let shutdown = CancellationToken::new();
    let running = dhan_keeper::app::start(cfg, clock, shutdown.clone()).await.expect("starts");
    let http = running.http.expect("listens");
    let keeper = Arc::clone(&running.keeper);
    let url = format!("http://{http}/events");
    eventually("a first token", || keeper.usable_token()).await;

    let mut stalled = stalled_reader(http).await;
    let mut prompt = Stream::connect(&url, None).await;

    // Far more than the socket buffers and the channel hold, so the stalled stream really backs up.
    let token = keeper.usable_token().expect("token");
    let t = Instant::now();
    for _ in 0..20_000 {
        keeper.events().publish(&token, "1000000001");
    }
    let publishing = t.elapsed();
    let last_synthetic: u64 =
        keeper.events().latest_id().rsplit('-').next().and_then(|g| g.parse().ok()).expect("latest id");
    assert!(publishing < Duration::from_secs(2), "publishing 20000 events took {publishing:?}");

    // A real rotation goes through while the stalled reader still holds its stream.
    let before = keeper.token().map(|t| t.access_token.expose().to_string());
    let t = Instant::now();
    let rotated = loop {
        match keeper.rotate("test", dhan_keeper::gate::Asker::Admin).await {
            Ok(t) => break t,
            Err(e) => {
                assert!(t.elapsed() < Duration::from_secs(10), "rotation failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(t.elapsed() < Duration::from_secs(5), "a rotation took {:?}", t.elapsed());
    assert_ne!(Some(rotated.access_token.expose().to_string()), before);

    // The prompt reader fell behind too (it reads while we publish in a burst): it gets a resync
    // or the events, and in the end the rotation's event.
    let mut saw_rotation = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Some(e) = prompt.next(Duration::from_secs(5)).await else { break };
        if e.event == "token" && generation(&e) > last_synthetic {
            saw_rotation = true;
            break;
        }
    }
    assert!(saw_rotation, "the reading stream received the rotation's event");

    // The stalled reader, once it reads, is told it missed events.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let n = stalled.read(&mut buf).await.expect("read");
            assert!(n > 0, "the stream stayed open");
            got.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&got).contains("event: resync") {
                return;
            }
        }
    })
    .await;
    assert!(found.is_ok(), "the stalled reader got a resync event");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running.join()).await.expect("stops within 10 s");
}
