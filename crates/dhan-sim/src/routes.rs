//! Dhan's routes on one listener: the auth host's `/app/...` and `/login/...`, the api host's
//! `/v2/...`. Point both `dhan_auth_url` and `dhan_api_url` at the simulator.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};

use crate::Shared;
use crate::state::{Reply, dh905};

type Params = Query<HashMap<String, String>>;

/// The Dhan router (admin routes are added by [`crate::admin`]).
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/app/generateAccessToken", post(generate_access_token))
        .route("/app/generate-consent", post(generate_consent))
        .route("/login/consentApp-login", get(login))
        .route("/app/consumeApp-consent", get(consume).post(consume))
        .route("/v2/RenewToken", get(renew).post(renew_post))
        .route("/v2/profile", any(account))
        .route("/v2/fundlimit", any(account))
        .route("/v2/holdings", any(account))
        .route("/v2/positions", any(account))
        .route("/v2/ip/getIP", get(get_ip))
        .fallback(not_found)
        .with_state(shared)
}

/// A JSON reply.
pub fn reply((status, body): Reply) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn generate_access_token(State(s): State<Arc<Shared>>, Query(q): Params, h: HeaderMap) -> Response {
    let now = s.clock.now();
    let json_content_type = header(&h, "content-type").is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    let mut st = s.lock();
    let st = st.client_mut(q.get("dhanClientId").map(String::as_str));
    reply(st.generate_access_token(
        q.get("dhanClientId").map(String::as_str),
        q.get("pin").map(String::as_str),
        q.get("totp").map(String::as_str),
        json_content_type,
        now,
    ))
}

async fn get_ip(State(s): State<Arc<Shared>>, h: HeaderMap, ConnectInfo(peer): ConnectInfo<SocketAddr>) -> Response {
    let now = s.clock.now();
    let mut st = s.lock();
    let st = st.by_token(header(&h, "access-token"));
    if let Err(why) = st.check_token(header(&h, "access-token"), now) {
        return reply(st.token_refusal(why));
    }
    reply(st.get_ip(Some(peer.ip())))
}

async fn generate_consent(State(s): State<Arc<Shared>>, Query(q): Params, h: HeaderMap) -> Response {
    let now = s.clock.now();
    let mut st = s.lock();
    reply(st.client_mut(q.get("client_id").map(String::as_str)).generate_consent(
        q.get("client_id").map(String::as_str),
        header(&h, "app_id"),
        header(&h, "app_secret"),
        now,
    ))
}

async fn login(State(s): State<Arc<Shared>>, Query(q): Params) -> Response {
    let target = q.get("consentAppId").and_then(|id| s.lock().by_consent(id).login(id));
    match target {
        Some(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>This login link is invalid or was already used.</h1></body></html>",
        )
            .into_response(),
    }
}

async fn consume(State(s): State<Arc<Shared>>, Query(q): Params, h: HeaderMap) -> Response {
    let now = s.clock.now();
    let mut st = s.lock();
    reply(st.by_token_id(q.get("tokenId").map(String::as_str)).consume_consent(
        q.get("tokenId").map(String::as_str),
        header(&h, "app_id"),
        header(&h, "app_secret"),
        now,
    ))
}

async fn renew(State(s): State<Arc<Shared>>, h: HeaderMap) -> Response {
    let now = s.clock.now();
    let mut st = s.lock();
    reply(st.by_token(header(&h, "access-token")).renew(header(&h, "access-token"), header(&h, "dhanClientId"), now))
}

async fn renew_post() -> Response {
    reply(dh905("Missing required fields, bad values for parameters etc."))
}

async fn account(State(s): State<Arc<Shared>>, uri: Uri, h: HeaderMap) -> Response {
    let now = s.clock.now();
    let mut st = s.lock();
    let st = st.by_token(header(&h, "access-token"));
    let issued = match st.check_token(header(&h, "access-token"), now) {
        Ok(i) => i.clone(),
        Err(why) => return reply(st.token_refusal(why)),
    };
    if !st.within_rate_limit(now) {
        return reply(crate::state::api_error(
            429,
            "Rate_Limit",
            "DH-904",
            "Too many requests on server from single user breaching rate limits. Try throttling API calls.",
        ));
    }
    reply(match uri.path() {
        "/v2/profile" => (200, st.profile(issued.expires_at)),
        "/v2/fundlimit" => (200, st.account.fundlimit.clone()),
        "/v2/holdings" => st.holdings(),
        _ => (200, Value::Array(st.account.positions.clone())),
    })
}

async fn not_found(State(s): State<Arc<Shared>>, uri: Uri) -> Response {
    let now = s.clock.now();
    reply((404, json!({"timestamp": now.to_rfc3339(), "status": 404, "error": "Not Found", "path": uri.path()})))
}
