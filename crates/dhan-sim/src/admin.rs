//! The HTTP admin API under `/__sim/`, for driving the simulator from outside Rust (shell
//! scripts, the benchmark, a person with curl). Everything here is also a method on
//! [`crate::DhanSim`].

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::Shared;
use crate::config::Account;
use crate::faults::Fault;
use crate::routes::reply;

/// The admin routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/__sim/state", get(state))
        .route("/__sim/faults", post(inject).delete(clear))
        .route("/__sim/account", put(set_account))
        .route("/__sim/mint-elsewhere", post(mint_elsewhere))
        .route("/__sim/expire", post(expire))
        .route("/__sim/clock", post(set_clock))
        .route("/__sim/totp", get(totp))
        .route("/__sim/login", get(login))
        .route("/__sim/reset-cooldown", delete(reset_cooldown))
        .with_state(shared)
}

async fn state(State(s): State<Arc<Shared>>) -> Response {
    let now = s.clock.now();
    let st = s.lock();
    reply((
        200,
        json!({
            "now": now.to_rfc3339(),
            "calls": st.calls,
            "mints": st.total_mints(),
            "issued": st.total_issued(),
            "has_active_token": st.active_token(now).is_some(),
            "client_id": st.config.client_id,
            "clients": st.clients().map(|c| json!({
                "client_id": c.config.client_id,
                "mints": c.mint_count,
                "has_active_token": c.active_token(now).is_some(),
            })).collect::<Vec<_>>(),
        }),
    ))
}

#[derive(Deserialize)]
struct Injection {
    route: String,
    #[serde(default = "one")]
    count: usize,
    #[serde(flatten)]
    fault: Fault,
}

fn one() -> usize {
    1
}

async fn inject(State(s): State<Arc<Shared>>, Json(i): Json<Injection>) -> Response {
    s.faults.inject(&i.route, i.fault, i.count);
    reply((200, json!({"ok": true, "pending": s.faults.pending(&i.route)})))
}

async fn clear(State(s): State<Arc<Shared>>) -> Response {
    s.faults.clear();
    reply((200, json!({"ok": true})))
}

async fn set_account(State(s): State<Arc<Shared>>, Json(a): Json<Account>) -> Response {
    s.lock().account = a;
    reply((200, json!({"ok": true})))
}

async fn mint_elsewhere(State(s): State<Arc<Shared>>) -> Response {
    let now = s.clock.now();
    s.lock().mint_elsewhere(now);
    reply((200, json!({"ok": true})))
}

async fn expire(State(s): State<Arc<Shared>>) -> Response {
    let now = s.clock.now();
    s.lock().expire_active(now);
    reply((200, json!({"ok": true})))
}

#[derive(Deserialize)]
struct ClockOffset {
    offset_secs: f64,
}

async fn set_clock(State(s): State<Arc<Shared>>, Json(c): Json<ClockOffset>) -> Response {
    let offset = chrono::Duration::milliseconds((c.offset_secs * 1000.0) as i64);
    s.clock.set_offset(offset);
    reply((200, json!({"ok": true})))
}

async fn totp(State(s): State<Arc<Shared>>) -> Response {
    let now = s.clock.now();
    match s.lock().totp_now(now) {
        Some((code, secs_left)) => reply((200, json!({"code": code, "secs_left": secs_left}))),
        None => reply((500, json!({"error": "the configured totp_secret is not base32"}))),
    }
}

#[derive(Deserialize)]
struct Login {
    #[serde(rename = "consentAppId")]
    consent_app_id: String,
}

async fn login(State(s): State<Arc<Shared>>, Query(l): Query<Login>) -> Response {
    match s.lock().by_consent(&l.consent_app_id).login(&l.consent_app_id) {
        Some(callback) => reply((200, json!({"callback_url": callback}))),
        None => reply((400, json!({"error": "unknown or already used consentAppId"}))),
    }
}

async fn reset_cooldown(State(s): State<Arc<Shared>>) -> Response {
    s.lock().reset_all_cooldowns();
    reply((200, json!({"ok": true})))
}
