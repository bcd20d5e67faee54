//! The loopback HTTP endpoint for trading programs and monitoring.
//!
//! `GET /healthz` (no secrets: 200 when a valid token is in hand, else 503), `GET /metrics`
//! (Prometheus text), `GET /token` (the token as JSON, only with `Authorization: Bearer
//! <http_token>`, compared in constant time), `GET /events` (new tokens as they arrive). With
//! several accounts each has `/token/LABEL`, `/healthz/LABEL` and `/events/LABEL`; `/healthz`
//! is then healthy only when every account is, and `/token` asks which account. The config refuses non-loopback addresses unless
//! `http_allow_remote` is set together with `http_token`.
//!
//! Any local user can connect without credentials, so the endpoint must never be able to starve
//! the rest of the daemon: rotating the token needs file descriptors (Dhan, the token file, the
//! state file, the hook) and memory. Hence a hand-written accept loop instead of `axum::serve`:
//! at most [`MAX_CONNECTIONS`] at once (the rest are closed at once, so they cost no descriptor),
//! request headers capped at [`MAX_HEADER_BYTES`] and due within [`HEADER_READ_TIMEOUT`] (which
//! also closes idle keep-alive connections), and no connection lives longer than
//! [`MAX_CONNECTION_LIFE`]. The `Host` header must name this machine, so a web page that rebinds
//! its DNS name to 127.0.0.1 cannot read `/healthz` or `/metrics` from the trader's browser.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::ist;
use crate::lifecycle::{Keeper, Keepers, Pick};

/// Connections served at once; more are closed on accept. Trading programs need a handful.
pub const MAX_CONNECTIONS: usize = 64;
/// The most a request's start line and headers may take (hyper's smallest buffer is 8 KiB).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// How long a client may take to send its headers, and how long a kept-alive connection may idle.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest any one connection is kept; clients simply reconnect.
pub const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(60);

/// Binds `addr` and serves until `shutdown`.
pub async fn bind(
    addr: SocketAddr,
    keepers: Keepers,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let any_host = keepers.shared().http_allow_remote;
    let events = shutdown.clone();
    let events_of = shutdown.clone();
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/healthz/{label}", get(healthz_of))
        .route("/metrics", get(metrics))
        .route("/token", get(token))
        .route("/token/{label}", get(token_of))
        .route(
            "/events",
            get(move |State(ks): State<Keepers>, headers: HeaderMap| {
                let shutdown = events.clone();
                async move {
                    if let Some(refused) = bearer_refusal(ks.shared(), &headers, "/events") {
                        return *refused;
                    }
                    match pick(&ks, None) {
                        Ok(k) => crate::events::stream(k, headers, shutdown).await,
                        Err(r) => *r,
                    }
                }
            }),
        )
        .route(
            "/events/{label}",
            get(move |State(ks): State<Keepers>, Path(label): Path<String>, headers: HeaderMap| {
                let shutdown = events_of.clone();
                async move {
                    if let Some(refused) = bearer_refusal(ks.shared(), &headers, "/events") {
                        return *refused;
                    }
                    match pick(&ks, Some(&label)) {
                        Ok(k) => crate::events::stream(k, headers, shutdown).await,
                        Err(r) => *r,
                    }
                }
            }),
        )
        .with_state(keepers);
    let task = tokio::spawn(accept_loop(listener, app, local, any_host, shutdown));
    Ok((local, task))
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    local: SocketAddr,
    any_host: bool,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut refused = 0u64;
    let mut accept_errors = 0u64;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE) or the like: back off instead of spinning.
                accept_errors += 1;
                if accept_errors == 1 || accept_errors.is_multiple_of(100) {
                    tracing::warn!(error = %e, count = accept_errors, "the HTTP endpoint could not accept a connection");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            refused += 1;
            if refused == 1 || refused.is_multiple_of(1000) {
                tracing::warn!(
                    limit = MAX_CONNECTIONS,
                    refused,
                    "the HTTP endpoint is at its connection limit; closing new connections"
                );
            }
            drop(stream);
            continue;
        };
        let app = app.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            serve_connection(stream, app, local, any_host, shutdown).await;
            drop(permit);
        });
    }
    // Let requests in flight finish, briefly.
    let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(2), permits.acquire_many(all)).await;
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    local: SocketAddr,
    any_host: bool,
    shutdown: CancellationToken,
) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        let host = req.headers().get(header::HOST).map(|h| h.to_str().unwrap_or("\u{fffd}").to_string());
        async move {
            if !any_host && !host_allowed(host.as_deref(), local) {
                return Ok::<_, Infallible>(wrong_host(local));
            }
            Ok(app.oneshot(req.map(axum::body::Body::new)).await.unwrap_or_else(|never| match never {}))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(64);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            return;
        }
        _ = tokio::time::sleep(MAX_CONNECTION_LIFE) => {}
        _ = shutdown.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
}

/// Whether a request's `Host` names this machine: `localhost`, a loopback address, or the
/// address we listen on, with or without a port. No `Host` at all (HTTP/1.0 tools) is fine:
/// browsers always send one, and browsers are what DNS rebinding needs.
pub(crate) fn host_allowed(host: Option<&str>, listen: SocketAddr) -> bool {
    let Some(host) = host else { return true };
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((name, _)) => name,
            None => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            Some(_) => return false,
            None => host,
        }
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip == listen.ip())
}

fn wrong_host(local: SocketAddr) -> Response {
    (
        StatusCode::MISDIRECTED_REQUEST,
        format!("this endpoint answers only requests for this machine; use http://{local}/ (the Host header names another host)\n"),
    )
        .into_response()
}

/// The account a request names (or the only one), or the 404 that lists the labels.
fn pick(ks: &Keepers, label: Option<&str>) -> Result<Arc<Keeper>, Box<Response>> {
    ks.pick(label).map(Arc::clone).map_err(|e| {
        let hint = match e {
            Pick::Ambiguous => format!("{}: ask /token/LABEL, /healthz/LABEL or /events/LABEL\n", e.message(ks)),
            Pick::Unknown(_) => format!("{}\n", e.message(ks)),
        };
        Box::new((StatusCode::NOT_FOUND, hint).into_response())
    })
}

fn health_response(ok: bool, body: serde_json::Value) -> Response {
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

async fn healthz(State(ks): State<Keepers>) -> Response {
    let (ok, body) = match ks.all() {
        [only] if only.label().is_none() => crate::replies::healthz(&only.view()),
        _ => crate::replies::healthz_many(&ks.views()),
    };
    health_response(ok, body)
}

async fn healthz_of(State(ks): State<Keepers>, Path(label): Path<String>) -> Response {
    match pick(&ks, Some(&label)) {
        Ok(k) => {
            let (ok, body) = crate::replies::healthz(&k.view());
            health_response(ok, body)
        }
        Err(r) => *r,
    }
}

async fn metrics(State(ks): State<Keepers>) -> Response {
    let body = ks.render_metrics();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

async fn token(State(ks): State<Keepers>, headers: HeaderMap) -> Response {
    token_for(&ks, None, &headers)
}

async fn token_of(State(ks): State<Keepers>, Path(label): Path<String>, headers: HeaderMap) -> Response {
    token_for(&ks, Some(&label), &headers)
}

/// `/token` and `/token/LABEL`: the bearer first (shared by every account), then the account.
fn token_for(ks: &Keepers, label: Option<&str>, headers: &HeaderMap) -> Response {
    if let Some(refused) = bearer_refusal(ks.shared(), headers, "/token") {
        return *refused;
    }
    let k = match pick(ks, label) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let Some(t) = k.usable_token() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no valid token right now\n").into_response();
    };
    let body = json!({
        "access_token": t.access_token.expose(),
        "expiry_time": ist::naive_string(&t.expires_at),
        "expires_at": ist::to_ist(&t.expires_at).to_rfc3339(),
        "client_id": t.client_id.as_deref().unwrap_or(&k.config().client_id),
    });
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

/// The refusal of a request for `path` (`/token`, `/events`) that lacks the `http_token`
/// bearer, compared in constant time; `None` when it may go on. Every account shares the bearer.
pub(crate) fn bearer_refusal(cfg: &crate::config::Config, headers: &HeaderMap, path: &str) -> Option<Box<Response>> {
    let Some(expected) = &cfg.http_token else {
        let text = format!("GET {path} is disabled: set http_token in the config\n");
        return Some(Box::new((StatusCode::NOT_FOUND, text).into_response()));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if constant_time_eq(presented.as_bytes(), expected.expose().as_bytes()) {
        return None;
    }
    Some(Box::new(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong bearer token (Authorization: Bearer <http_token>)\n",
        )
            .into_response(),
    ))
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, y) in b.iter().enumerate() {
        let x = a.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::{constant_time_eq, host_allowed};

    #[test]
    fn equal_only_when_identical() {
        assert!(constant_time_eq(b"abcdefghijklmnop", b"abcdefghijklmnop"));
        assert!(!constant_time_eq(b"abcdefghijklmnoq", b"abcdefghijklmnop"));
        assert!(!constant_time_eq(b"abc", b"abcdefghijklmnop"));
        assert!(!constant_time_eq(b"", b"abcdefghijklmnop"));
        assert!(!constant_time_eq(b"abcdefghijklmnopq", b"abcdefghijklmnop"));
    }

    #[test]
    fn only_hosts_that_name_this_machine_are_served() {
        let listen: std::net::SocketAddr = "127.0.0.1:8765".parse().expect("addr");
        for ok in [
            None,
            Some("localhost"),
            Some("LOCALHOST:8765"),
            Some("127.0.0.1:8765"),
            Some("127.0.0.2"),
            Some("[::1]:8765"),
            Some("[::1]"),
        ] {
            assert!(host_allowed(ok, listen), "{ok:?} should be allowed");
        }
        for bad in [
            Some("evil.example:8765"),
            Some("evil.example"),
            Some("localhost.evil.example"),
            Some("10.0.0.1:8765"),
            Some("[::1"),
            Some("127.0.0.1:x"),
            Some(""),
        ] {
            assert!(!host_allowed(bad, listen), "{bad:?} should be refused");
        }
        let wide: std::net::SocketAddr = "192.168.1.5:8765".parse().expect("addr");
        assert!(host_allowed(Some("192.168.1.5:8765"), wide));
    }
}
