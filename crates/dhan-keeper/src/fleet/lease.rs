//! The lease's arithmetic: until when a holder may act, when it renews. Pure, no I/O.
//!
//! Redis counts a lease's time from when it *received* the `SET … PX ttl`, which is after we
//! sent it; so a holder that measures from an [`Instant`] taken *before* sending, on its own
//! monotonic clock, always believes its lease ends no later than Redis does. Subtracting a safety
//! margin covers the two clocks running at slightly different rates and the time between the
//! check and the act. A holder that cannot renew (Redis paused, partitioned, gone) therefore stops
//! acting before its lease could have passed to another keeper: safety over liveness. Redis's own
//! docs and Kleppmann's critique agree the lock is advisory (a paused *holder* can still outlive
//! it), which is why the keeper also checks before minting and validates after.

use std::time::{Duration, Instant};

/// How long a lease lasts and how it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// The lease's time to live in Redis; a dead holder is replaced within this plus one poll.
    pub ttl: Duration,
    /// How often the holder renews (and a contender retries): a third of the TTL by default, so
    /// two renewals may fail before the lease is in danger.
    pub renew_every: Duration,
    /// Taken off the end of the lease: the holder stops acting this long before it ends.
    pub margin: Duration,
}

impl LeaseTiming {
    /// Renewal every third of `ttl`, margin a tenth of it (at least 50 ms).
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, renew_every: ttl / 3, margin: (ttl / 10).max(Duration::from_millis(50)).min(ttl / 2) }
    }
}

impl Default for LeaseTiming {
    /// 30 s: longer than a mint request may take (`dhan_timeout`, 15 s by default), short
    /// enough that a dead leader is replaced well inside Dhan's 2-minute window.
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}

/// The instant until which a holder whose `SET`/renewal was sent at `sent_at` may act:
/// `sent_at + ttl - margin`.
pub fn may_act_until(sent_at: Instant, timing: LeaseTiming) -> Instant {
    sent_at + timing.ttl.saturating_sub(timing.margin)
}

/// A lease this node holds, as of its last successful acquire or renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub(crate) holder_id: String,
    pub(crate) sent_at: Instant,
    pub(crate) timing: LeaseTiming,
}

impl Lease {
    /// A lease whose acquiring (or renewing) command was sent at `sent_at`.
    pub(crate) fn new(holder_id: String, sent_at: Instant, timing: LeaseTiming) -> Self {
        Self { holder_id, sent_at, timing }
    }

    /// Until when this node may act on it.
    pub fn may_act_until(&self) -> Instant {
        may_act_until(self.sent_at, self.timing)
    }

    /// Whether this node may still act at `now`.
    pub fn may_act(&self, now: Instant) -> bool {
        now < self.may_act_until()
    }

    /// Whether an action that may take up to `takes` (a mint request: `dhan_timeout`) may start
    /// at `now` and finish inside the lease.
    pub fn may_start(&self, now: Instant, takes: Duration) -> bool {
        now.checked_add(takes).is_some_and(|end| end <= self.may_act_until())
    }

    /// How long this node may still act, from `now`.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.may_act_until().saturating_duration_since(now)
    }

    /// Whether it is time to renew at `now`.
    pub fn renew_due(&self, now: Instant) -> bool {
        now >= self.sent_at + self.timing.renew_every
    }

    /// The id stored in Redis as the lease's value (`node#instance`).
    pub fn holder_id(&self) -> &str {
        &self.holder_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_holder_stops_acting_before_redis_could_expire_its_lease() {
        let t0 = Instant::now();
        let timing = LeaseTiming { ttl: MS(1000), renew_every: MS(333), margin: MS(100) };
        let lease = Lease::new("a#1".into(), t0, timing);
        // (ms after sending, may act, may start a 300 ms action, renew due)
        let table = [
            (0, true, true, false),
            (332, true, true, false),
            (333, true, true, true),
            (600, true, true, true),
            (601, true, false, true),
            (899, true, false, true),
            (900, false, false, true),
            (1000, false, false, true),
        ];
        for (at, act, start, renew) in table {
            let now = t0 + MS(at);
            assert_eq!(lease.may_act(now), act, "may_act at {at} ms");
            assert_eq!(lease.may_start(now, MS(300)), start, "may_start at {at} ms");
            assert_eq!(lease.renew_due(now), renew, "renew_due at {at} ms");
        }
        // Redis received the SET at t0 + latency, so its expiry is later still: the end of
        // acting is strictly before the earliest moment another keeper could acquire.
        assert!(lease.may_act_until() < t0 + timing.ttl);
        assert_eq!(lease.remaining(t0 + MS(400)), MS(500));
        assert_eq!(lease.remaining(t0 + MS(5000)), Duration::ZERO);
    }

    #[test]
    fn default_timings_leave_room_for_a_mint_request() {
        let d = LeaseTiming::default();
        assert_eq!((d.ttl, d.renew_every, d.margin), (MS(30_000), MS(10_000), MS(3_000)));
        // Right after a renewal a 15 s mint may start; the margin never eats the whole lease.
        let lease = Lease::new("a#1".into(), Instant::now(), d);
        assert!(lease.may_start(lease.sent_at, Duration::from_secs(15)));
        let tiny = LeaseTiming::new(MS(60));
        assert_eq!(tiny.margin, MS(30));
        assert!(may_act_until(lease.sent_at, tiny) > lease.sent_at);
    }
}
