//! What a keeper says about its fleet: the `/status` line and the `/metrics` gauges. Pure
//! renderings of what the fleet side last learnt, so they are tested as text.

use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::{Keeper, lock};
use crate::ist;

/// What `/status` says about the fleet. No secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetView {
    /// This node's name.
    pub node: String,
    /// This node holds the lease now.
    pub leader: bool,
    /// This node has no credentials and never leads.
    pub follower_only: bool,
    /// The holder's node name, as Redis said last.
    pub holder: Option<String>,
    /// The generation of the shared token this node last took.
    pub generation: Option<u64>,
    /// Redis has not answered since then.
    pub unreachable_since: Option<DateTime<Utc>>,
}

impl FleetView {
    /// The `/status` line. Pure.
    pub fn line(&self) -> String {
        let generation = self.generation.map(|g| format!("; shared token generation {g}")).unwrap_or_default();
        if let Some(since) = self.unreachable_since {
            let held = if self.follower_only { "" } else { "; automatic rotation is held, /refresh mints here anyway" };
            return format!(
                "🛰 Fleet: Redis unreachable since {}{held} (this node: {})",
                ist::to_ist(&since).format("%H:%M:%S IST"),
                self.node
            );
        }
        let who = match (&self.holder, self.leader) {
            (_, true) => format!("this node ({}) holds the lease and mints", self.node),
            (Some(h), false) => format!("{h} holds the lease; this node ({}) follows", self.node),
            (None, false) => format!("no keeper holds the lease right now; this node ({}) follows", self.node),
        };
        format!("🛰 Fleet: {who}{generation}")
    }
}

impl Keeper {
    /// The fleet's part of `/status`; `None` without a fleet.
    pub fn fleet_view(&self) -> Option<FleetView> {
        let c = self.coordinator();
        let fleet = c.fleet_ref()?;
        let seen = lock(&self.fleet.seen).clone();
        Some(FleetView {
            node: fleet.node().to_string(),
            leader: c.may_act(Instant::now()),
            follower_only: !self.cfg.has_credentials(),
            holder: seen.holder,
            generation: c.seen().map(|s| s.generation),
            unreachable_since: seen.unreachable_since,
        })
    }

    /// The fleet's gauges for `/metrics`; empty without a fleet.
    pub fn fleet_metrics(&self) -> Vec<crate::metrics::Family> {
        let c = self.coordinator();
        let Some(fleet) = c.fleet_ref() else { return Vec::new() };
        let now = Instant::now();
        let lease_left = c.lease().and_then(|l| l.current(now)).map_or(0.0, |l| l.remaining(now).as_secs_f64());
        let up = lock(&self.fleet.seen).unreachable_since.is_none();
        let gauges = [
            (
                "dhan_keeper_fleet_leader",
                "1 while this keeper holds the fleet lease (it mints, polls the bot, alerts)",
                "gauge",
                f64::from(u8::from(c.may_act(now))),
            ),
            (
                "dhan_keeper_fleet_lease_seconds",
                "How long this keeper may still act on its lease (0 when not leading)",
                "gauge",
                lease_left,
            ),
            (
                "dhan_keeper_fleet_generation",
                "Generation of the shared token this keeper last took or published",
                "gauge",
                c.seen().map_or(0.0, |s| s.generation as f64),
            ),
            (
                "dhan_keeper_fleet_redis_up",
                "1 when Redis answered this keeper's last fleet call",
                "gauge",
                f64::from(u8::from(up)),
            ),
            (
                "dhan_keeper_fleet_double_mints_total",
                "Two keepers minted inside one mint window (settled by a profile check)",
                "counter",
                self.fleet.double_mints.load(Ordering::Relaxed) as f64,
            ),
        ];
        let node = fleet.node();
        gauges
            .into_iter()
            .map(|(name, help, kind, value)| crate::metrics::Family {
                name,
                kind,
                help,
                samples: vec![(format!("node=\"{node}\""), value.to_string())],
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_names_the_holder_or_the_outage() {
        let v = FleetView {
            node: "box-2".into(),
            leader: false,
            follower_only: false,
            holder: Some("box-1".into()),
            generation: Some(4),
            unreachable_since: None,
        };
        assert_eq!(v.line(), "🛰 Fleet: box-1 holds the lease; this node (box-2) follows; shared token generation 4");
        let lead = FleetView { leader: true, ..v.clone() };
        assert!(lead.line().contains("this node (box-2) holds the lease and mints"), "{}", lead.line());
        let none = FleetView { holder: None, generation: None, ..v.clone() };
        assert!(none.line().contains("no keeper holds the lease right now"), "{}", none.line());
        let since = DateTime::parse_from_rfc3339("2026-11-30T03:40:05Z").expect("time").with_timezone(&Utc);
        let down = FleetView { unreachable_since: Some(since), ..v.clone() };
        assert!(
            down.line().contains("Redis unreachable since 09:10:05 IST; automatic rotation is held"),
            "{}",
            down.line()
        );
        let follower = FleetView { follower_only: true, ..down };
        assert!(!follower.line().contains("/refresh"), "{}", follower.line());
    }
}
