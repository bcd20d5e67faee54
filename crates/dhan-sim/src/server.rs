//! The accept loop. Hand-rolled over hyper (instead of `axum::serve`) for two reasons a faithful
//! fake needs: an injected "drop" must close the connection without any response, and `stop()`
//! must cut every open connection so a client sees "connection refused" until `restart()`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::Shared;
use crate::faults::{Fault, TokenRejection};
use crate::routes::reply;
use crate::state::api_error;

/// Binds `addr` with SO_REUSEADDR so a restarted simulator gets its old port back.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Serves until `cancel` fires, then drops the listener and every connection.
pub(crate) async fn serve(listener: TcpListener, app: Router, shared: Arc<Shared>, cancel: CancellationToken) {
    serve_fn(listener, cancel, move |req| handle(app.clone(), shared.clone(), req)).await;
}

/// The accept loop behind both simulators: each request goes to `handle`; an `Err` closes the
/// connection without a response (an injected "drop").
pub(crate) async fn serve_fn<F, Fut>(listener: TcpListener, cancel: CancellationToken, handle: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response, std::io::Error>> + Send + 'static,
{
    loop {
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let (handle, cancel) = (handle.clone(), cancel.clone());
        tokio::spawn(async move {
            // The caller's address, as `/v2/ip/getIP` reports it (`detectedIP`).
            let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                handle(req)
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                () = cancel.cancelled() => {}
            }
        });
    }
}

/// The route name faults and counters use: the last path segment (`profile`, `generateAccessToken`).
pub fn route_key(path: &str) -> String {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string()
}

async fn handle(app: Router, shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response, std::io::Error> {
    let path = req.uri().path().to_string();
    if path.starts_with("/__sim") {
        let resp = app.oneshot(req.map(Body::new)).await.unwrap_or_else(|never| match never {});
        return Ok(with_date(&shared, resp));
    }
    let key = route_key(&path);
    let (received, started) = (crate::clock::real_now(), std::time::Instant::now());
    let result = answer(app, &shared, &key, req).await;
    let mut st = shared.lock();
    if st.call_log.len() >= crate::state::CALL_LOG_MAX {
        st.call_log.pop_front();
    }
    st.call_log.push_back(crate::state::CallRecord { route: key, received, took: started.elapsed() });
    result
}

async fn answer(app: Router, shared: &Shared, key: &str, req: Request<Incoming>) -> Result<Response, std::io::Error> {
    let require_user_agent = {
        let mut st = shared.lock();
        *st.calls.entry(key.to_string()).or_default() += 1;
        st.config.require_user_agent
    };
    if require_user_agent && !req.headers().contains_key(header::USER_AGENT) {
        return Ok(with_date(shared, cloudfront_403()));
    }
    if let Some(fault) = shared.faults.take(key) {
        tracing::debug!(route = %key, ?fault, "injecting fault");
        match fault {
            Fault::Drop => return Err(std::io::Error::other("injected connection drop")),
            Fault::Delay { ms } => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
            Fault::SlowReply { ms, status, body, counts_as_mint } => {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                if counts_as_mint {
                    let now = shared.clock.now();
                    let client = req.uri().query().and_then(|q| {
                        url::form_urlencoded::parse(q.as_bytes())
                            .find(|(k, _)| k == "dhanClientId")
                            .map(|(_, v)| v.into_owned())
                    });
                    shared.lock().client_mut(client.as_deref()).count_mint_attempt(now);
                }
                return Ok(with_date(shared, reply((status, body))));
            }
            other => return Ok(with_date(shared, fault_response(&other))),
        }
    }
    let resp = app.oneshot(req.map(Body::new)).await.unwrap_or_else(|never| match never {});
    Ok(with_date(shared, resp))
}

fn with_date(shared: &Shared, mut resp: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&shared.clock.http_date()) {
        resp.headers_mut().insert(header::DATE, v);
    }
    resp
}

fn html(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html")], body).into_response()
}

fn cloudfront_403() -> Response {
    html(
        StatusCode::FORBIDDEN,
        "<HTML><HEAD><TITLE>ERROR: The request could not be satisfied</TITLE></HEAD><BODY><H1>403 ERROR</H1>\
         Request blocked. Generated by cloudfront (CloudFront)</BODY></HTML>",
    )
}

fn fault_response(fault: &Fault) -> Response {
    match fault {
        Fault::Status { status: 500 } => reply(api_error(
            500,
            "Internal_Server_Error",
            "DH-908",
            "Server was not able to process API request. This will only happen rarely.",
        )),
        Fault::Status { status: s @ (502..=504) } => html(
            StatusCode::from_u16(*s).unwrap_or(StatusCode::BAD_GATEWAY),
            "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>",
        ),
        Fault::Status { status } => reply(api_error(*status, "Others", "DH-910", "Injected failure")),
        Fault::Garbage => html(StatusCode::OK, "<!DOCTYPE html><html><body><h1>Under maintenance</h1></body></html>"),
        Fault::Truncated => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"dhanClientId":"1000000001","accessToken":"eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.eyJpc3Mi"#,
        )
            .into_response(),
        Fault::RateLimit => reply(api_error(
            429,
            "Rate_Limit",
            "DH-904",
            "Too many requests on server from single user breaching rate limits. Try throttling API calls.",
        )),
        Fault::Json { status, body } => reply((*status, body.clone())),
        Fault::RejectToken { code: TokenRejection::Dh901 } => reply(crate::state::dh901()),
        Fault::RejectToken { code: TokenRejection::Dh906 } => {
            reply(api_error(400, "Order_Error", "DH-906", "Invalid Token"))
        }
        Fault::Drop | Fault::Delay { .. } | Fault::SlowReply { .. } => reply((500, serde_json::json!({}))),
    }
}
