//! `dhan-keeper fleet status`: the keepers sharing this client id through Redis, who holds the
//! lease, and the shared token's generation and expiry — read from Redis, never the token.
//!
//! It is what an operator runs on any host to answer "who is leading, and is everyone caught
//! up?" without logging in to each machine. The Redis URL is shown without its password.

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::clock::Clock;
use crate::config::Config;
use crate::fleet::{Fleet, FleetStatus};
use crate::ist;

/// `dhan-keeper fleet status [--json]`. Exit 0 when Redis answered, 1 when it did not, 2 when
/// the config has no `redis_url`.
pub async fn fleet_status(cfg: &Config, clock: &dyn Clock, json: bool) -> ExitCode {
    let Some(fleet_cfg) = &cfg.fleet else {
        eprintln!(
            "error: `redis_url` is not set, so this keeper runs alone and has no fleet; see docs/fleet.md to share \
             one token between hosts"
        );
        return ExitCode::from(2);
    };
    let fleet = match Fleet::new(fleet_cfg, &cfg.client_id, Duration::from_secs(3)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let status = match fleet.status().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let now = clock.now();
    if json {
        super::out(&render_json(&status, &cfg.client_id, fleet.redis_at(), fleet.node().as_str(), now).to_string());
    } else {
        for line in render(&status, &cfg.client_id, fleet.redis_at(), fleet.node().as_str(), now) {
            super::out(&line);
        }
    }
    ExitCode::SUCCESS
}

/// `node#instance` → `node`.
fn node_of(holder_id: &str) -> &str {
    holder_id.split_once('#').map_or(holder_id, |(n, _)| n)
}

fn secs(d: Duration) -> String {
    ist::human_duration(chrono::Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

/// The text report. Pure.
pub(crate) fn render(s: &FleetStatus, client_id: &str, at: &str, me: &str, now: DateTime<Utc>) -> Vec<String> {
    let mut lines = vec![format!("Fleet of client {client_id} at {at} (this node: {me})")];
    lines.push(match &s.lease {
        Some((holder, left)) => format!("Lease: held by {} ({} left in Redis)", node_of(holder), secs(*left)),
        None => "Lease: free (no keeper leads right now; one takes it within a lease renewal)".into(),
    });
    lines.push(match &s.record {
        Some(r) => format!(
            "Shared token: generation {} (epoch {}), published by {}{}, expires {} ({} left){}",
            r.id.generation,
            r.id.epoch.get(..8).unwrap_or(&r.id.epoch),
            r.holder,
            r.published_at.map(|t| format!(" at {}", ist::human_secs(&t))).unwrap_or_default(),
            ist::human(&r.expires_at),
            ist::human_duration(r.expires_at.with_timezone(&Utc) - now),
            r.source.map(|src| format!(", source {src}")).unwrap_or_default(),
        ),
        None => "Shared token: none published yet".into(),
    });
    lines.push(format!("Nodes ({}):", s.nodes.len()));
    for n in &s.nodes {
        let caught_up = n
            .caught_up_at
            .map(|t| format!("caught up {} ago", ist::human_duration(now - t.with_timezone(&Utc))))
            .unwrap_or_else(|| "never caught up".into());
        let generation = n.generation.map(|g| format!("generation {g}")).unwrap_or_else(|| "no token yet".into());
        let mark = if n.node == me { "  (this node)" } else { "" };
        lines.push(format!("  {:<20} {:<9} {generation:<14} {caught_up}{mark}", n.node, n.role));
    }
    if s.nodes.is_empty() {
        lines.push("  (no keeper has written a heartbeat recently)".into());
    }
    lines
}

/// The JSON report. Pure.
pub(crate) fn render_json(
    s: &FleetStatus,
    client_id: &str,
    at: &str,
    me: &str,
    now: DateTime<Utc>,
) -> serde_json::Value {
    json!({
        "client_id": client_id,
        "redis": at,
        "node": me,
        "lease": s.lease.as_ref().map(|(h, left)| json!({"holder": node_of(h), "holder_id": h, "ttl_ms": u64::try_from(left.as_millis()).unwrap_or(u64::MAX)})),
        "token": s.record.as_ref().map(|r| json!({
            "generation": r.id.generation,
            "epoch": r.id.epoch,
            "holder": r.holder,
            "expires_at": r.expires_at.to_rfc3339(),
            "expires_in_s": (r.expires_at.with_timezone(&Utc) - now).num_seconds(),
            "published_at": r.published_at.map(|t| t.to_rfc3339()),
            "source": r.source.map(|x| x.as_str()),
        })),
        "nodes": s.nodes.iter().map(|n| json!({
            "node": n.node,
            "role": n.role,
            "generation": n.generation,
            "caught_up_at": n.caught_up_at.map(|t| t.to_rfc3339()),
            "heartbeat_ttl_ms": n.expires_in.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::fleet::NodeReport;

    #[test]
    fn an_empty_fleet_and_a_busy_one_read_plainly() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 4, 0, 0).single().expect("time");
        let empty = FleetStatus { lease: None, record: None, nodes: vec![] };
        let lines = render(&empty, "1000000001", "redis://127.0.0.1:6379", "box-1", now);
        assert_eq!(lines[1], "Lease: free (no keeper leads right now; one takes it within a lease renewal)");
        assert_eq!(lines[2], "Shared token: none published yet");
        assert_eq!(lines[4], "  (no keeper has written a heartbeat recently)");

        let busy = FleetStatus {
            lease: Some(("box-1#abcd1234".into(), Duration::from_secs(24))),
            record: None,
            nodes: vec![NodeReport {
                node: "box-2".into(),
                role: "follower".into(),
                generation: Some(3),
                caught_up_at: Some(ist::to_ist(&(now - chrono::Duration::seconds(2)))),
                expires_in: Some(Duration::from_secs(10)),
            }],
        };
        let lines = render(&busy, "1000000001", "redis://h:1", "box-2", now);
        assert!(lines[1].starts_with("Lease: held by box-1 ("), "{}", lines[1]);
        assert!(lines[4].contains("box-2") && lines[4].contains("generation 3") && lines[4].contains("(this node)"));
        let j = render_json(&busy, "1000000001", "redis://h:1", "box-2", now);
        assert_eq!(j["lease"]["holder"], "box-1");
        assert_eq!(j["nodes"][0]["generation"], 3);
    }
}
