//! Heartbeats: each node says, with an expiry, what role it has and what it last caught up to,
//! so `fleet status` can list the live nodes from any host; a node that stops writing vanishes.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use super::record::{RecordId, SharedRecord};
use super::store::{Fleet, FleetError, millis};

/// A node's role, as its heartbeat says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds the lease: may mint, polls the bot, sends alerts.
    Leader,
    /// Follows the shared record.
    Follower,
}

impl Role {
    /// `leader` or `follower`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
        }
    }
}

/// What a node says about itself in its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    /// The node.
    pub node: String,
    /// Its role when it wrote this.
    pub role: String,
    /// The generation of the record it last took.
    pub generation: Option<u64>,
    /// When it last read the record successfully.
    pub caught_up_at: Option<DateTime<FixedOffset>>,
    /// How long until this heartbeat expires (a node that stops writing disappears).
    pub expires_in: Option<Duration>,
}

/// Everything `fleet status` shows.
#[derive(Debug, Clone)]
pub struct FleetStatus {
    /// The lease's holder (`node#instance`) and how long Redis will keep it.
    pub lease: Option<(String, Duration)>,
    /// The shared record, if any.
    pub record: Option<SharedRecord>,
    /// Every node with a live heartbeat, by name.
    pub nodes: Vec<NodeReport>,
}

impl Fleet {
    /// Writes this node's heartbeat (expires after `ttl` unless written again).
    pub async fn heartbeat(
        &self,
        role: Role,
        seen: Option<&RecordId>,
        caught_up_at: Option<DateTime<Utc>>,
        ttl: Duration,
    ) -> Result<(), FleetError> {
        let key = self.keys.node(&self.node);
        let fields = [
            ("role", role.as_str().to_string()),
            ("holder_id", self.holder_id.clone()),
            ("generation", seen.map(|s| s.generation.to_string()).unwrap_or_default()),
            ("epoch", seen.map(|s| s.epoch.clone()).unwrap_or_default()),
            ("caught_up_at", caught_up_at.map(|t| crate::ist::to_ist(&t).to_rfc3339()).unwrap_or_default()),
        ];
        let ttl = millis(ttl);
        self.run(|mut c| async move {
            redis::pipe()
                .atomic()
                .hset_multiple(&key, &fields)
                .ignore()
                .pexpire(&key, ttl)
                .ignore()
                .query_async(&mut c)
                .await
        })
        .await
    }

    /// Every node with a live heartbeat, sorted by name.
    pub async fn nodes(&self) -> Result<Vec<NodeReport>, FleetError> {
        let pattern = self.keys.node_pattern();
        let mut cursor = 0u64;
        let mut keys = Vec::new();
        loop {
            let p = pattern.clone();
            let (next, batch): (u64, Vec<String>) = self
                .run(|mut c| async move {
                    redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(p).arg("COUNT").arg(100).query_async(&mut c).await
                })
                .await?;
            keys.extend(batch);
            if next == 0 || keys.len() > 10_000 {
                break;
            }
            cursor = next;
        }
        let prefix_len = pattern.len() - 1;
        let mut nodes = Vec::new();
        for key in keys {
            let k = key.clone();
            let (fields, pttl): (HashMap<String, String>, i64) =
                self.run(|mut c| async move { redis::pipe().hgetall(&k).pttl(&k).query_async(&mut c).await }).await?;
            if fields.is_empty() {
                continue;
            }
            nodes.push(NodeReport {
                node: key.get(prefix_len..).unwrap_or_default().to_string(),
                role: fields.get("role").cloned().unwrap_or_default(),
                generation: fields.get("generation").and_then(|g| g.parse().ok()),
                caught_up_at: fields.get("caught_up_at").and_then(|t| DateTime::parse_from_rfc3339(t).ok()),
                expires_in: u64::try_from(pttl).ok().map(Duration::from_millis),
            });
        }
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(nodes)
    }

    /// The lease, the record and the nodes, for `fleet status`.
    pub async fn status(&self) -> Result<FleetStatus, FleetError> {
        Ok(FleetStatus { lease: self.lease_holder().await?, record: self.read().await?, nodes: self.nodes().await? })
    }
}
