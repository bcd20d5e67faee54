//! Beyond one machine: several keepers share one token per client id through Redis.
//!
//! Two keepers minting for one client kill each other's tokens (each mint invalidates the last,
//! and every refused attempt re-arms Dhan's window), so exactly one keeper per client id may
//! mint at a time. That is decided by a lease in Redis, an engine such teams already run, rather
//! than by home-made consensus. The others follow a shared record that holds the token sealed
//! with a key only the keepers have.
//!
//! The parts, each with one job:
//! - [`names`]: the Redis URL (a secret), node names, the keys (never containing a secret);
//! - [`seal`]: [`FleetKey`] seals and opens the token (XChaCha20-Poly1305);
//! - [`lease`]: until when a holder may act (pure arithmetic on the monotonic clock);
//! - [`store`]: [`Fleet`], the connection to Redis and the lease (`SET NX PX`, compare-and-renew);
//! - [`record`]: the shared record and its compare-and-set publish;
//! - [`nodes`]: heartbeats and `fleet status`;
//! - [`campaign`]: the task that takes and keeps the lease, and the [`LeaseHandle`] the keeper
//!   asks before it mints;
//! - [`coordinator`]: [`Coordinator`], the keeper's one question ("may I mint?") and the calls
//!   around a mint; [`Coordinator::alone`] for a single host;
//! - [`mod@follow`]: the follower loop (pub/sub plus a periodic re-read);
//! - [`decide`]: whether a keeper may mint now, wait, or (an admin, Redis unreachable) override.
//!
//! The keeper's side of the wiring (adopting shared tokens, announcing its own, the bot only on
//! the leader) is in `lifecycle/fleet.rs` and `lifecycle/fleet_tasks.rs`.
//!
//! `docs/fleet.md` describes how the keeper wires these in and what happens when Redis fails.

pub mod campaign;
pub mod coordinator;
pub mod decide;
pub mod follow;
pub mod lease;
pub mod names;
pub mod nodes;
pub mod record;
pub mod seal;
pub mod store;

pub use campaign::{LeaseHandle, spawn_campaign};
pub use coordinator::Coordinator;
pub use decide::{LeaseFacts, MintDecision, Waiting, before_mint};
pub use follow::{FollowOptions, double_mint_between, follow, is_news, should_adopt};
pub use lease::{Lease, LeaseTiming, may_act_until};
pub use names::{NodeName, RedisUrl};
pub use nodes::{FleetStatus, NodeReport, Role};
pub use record::{Offered, RecordId, SharedRecord, SharedToken};
pub use seal::FleetKey;
pub use store::{Fleet, FleetError};
