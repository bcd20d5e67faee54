//! The loopback HTTP endpoint for trading programs and monitoring.
//!
//! `GET /healthz` (no secrets: 200 when a valid token is in hand, else 503), `GET /metrics`
//! (Prometheus text), `GET /token` (the token as JSON, only with `Authorization: Bearer
//! <http_token>`, compared in constant time). The config refuses non-loopback addresses.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::ist;
use crate::lifecycle::Keeper;

/// Binds `addr` and serves until `shutdown`.
pub async fn bind(
    addr: SocketAddr,
    keeper: Arc<Keeper>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/token", get(token))
        .route("/events", crate::events::route(shutdown.clone()))
        .with_state(keeper);
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the HTTP endpoint stopped");
        }
    });
    Ok((local, task))
}

async fn healthz(State(k): State<Arc<Keeper>>) -> Response {
    let now = k.clock.now();
    let token = k.usable_token();
    let body = json!({
        "status": if token.is_some() { "ok" } else { "no_valid_token" },
        "token_valid": token.is_some(),
        "expires_at": token.as_ref().map(|t| ist::to_ist(&t.expires_at).to_rfc3339()),
        "seconds_left": token.as_ref().map(|t| t.remaining(now).num_seconds()),
        "paused": k.state.get().paused,
        "token_file_written": !k.live().unsaved,
        // Whether Dhan accepts orders from this machine: reported, never a failure of the token.
        "static_ip": match k.live().ip {
            Some(Ok(ip)) => json!({
                "orders_allowed": !ip.orders_refused(),
                "detected_ip": ip.detected_ip,
                "primary_ip": ip.primary_ip,
                "secondary_ip": ip.secondary_ip,
            }),
            Some(Err(e)) => json!({ "error": e }),
            None => serde_json::Value::Null,
        },
    });
    let status = if token.is_some() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(k): State<Arc<Keeper>>) -> Response {
    let now = k.clock.now();
    let expires = k.usable_token().map(|t| t.expires_at.timestamp());
    let failures = k.outbox.failures.load(std::sync::atomic::Ordering::Relaxed);
    let body = k.metrics.render(expires, now.timestamp(), failures);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

async fn token(State(k): State<Arc<Keeper>>, headers: HeaderMap) -> Response {
    let Some(expected) = &k.cfg.http_token else {
        return (StatusCode::NOT_FOUND, "GET /token is disabled: set http_token in the config\n").into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !constant_time_eq(presented.as_bytes(), expected.expose().as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong bearer token (Authorization: Bearer <http_token>)\n",
        )
            .into_response();
    }
    let Some(t) = k.usable_token() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no valid token right now\n").into_response();
    };
    let body = json!({
        "access_token": t.access_token.expose(),
        "expiry_time": ist::naive_string(&t.expires_at),
        "expires_at": ist::to_ist(&t.expires_at).to_rfc3339(),
        "client_id": t.client_id.as_deref().unwrap_or(&k.cfg.client_id),
    });
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
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
    use super::constant_time_eq;

    #[test]
    fn equal_only_when_identical() {
        assert!(constant_time_eq(b"abcdefghijklmnop", b"abcdefghijklmnop"));
        assert!(!constant_time_eq(b"abcdefghijklmnoq", b"abcdefghijklmnop"));
        assert!(!constant_time_eq(b"abc", b"abcdefghijklmnop"));
        assert!(!constant_time_eq(b"", b"abcdefghijklmnop"));
        assert!(!constant_time_eq(b"abcdefghijklmnopq", b"abcdefghijklmnop"));
    }
}
