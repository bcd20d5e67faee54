//! Whether a keeper may get a new token now, as a pure function of what its lease says.
//!
//! Two keepers minting for one client kill each other's tokens, so in a fleet only the lease
//! holder mints, and only when the mint can finish inside its lease. The one exception is a
//! human: when Redis cannot be reached, the last holder (the only node still answering the bot)
//! mints once if an admin asks for it with `/refresh`, because a person who overrides has seen the
//! outage, and an override mints exactly once. The schedule never overrides: with Redis gone,
//! automatic rotation waits (safety over liveness; a token lives 24 h). `docs/fleet.md` has the
//! failure table. The override needs the word `force` (`/refresh force`): Redis may be
//! unreachable from this host only, while another host leads and mints.

use crate::gate::Asker;

/// What the lease says about a mint (or a renewal) now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MintDecision {
    /// Go on (alone, or the holder with room for the whole request).
    Mint,
    /// Mint without the lease: an admin asked while Redis is unreachable, on the last holder.
    Override,
    /// Do not mint now.
    Wait(Waiting),
}

/// Why a keeper does not mint now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Another keeper leads (or this one has no credentials): it follows the shared token.
    Follower,
    /// This node holds the lease, but too little of it is left for a mint request; the renewal
    /// comes first.
    LeaseTooShort,
    /// This node held the lease last and Redis cannot be reached: automatic rotation is held.
    RedisUnreachable,
}

/// What the keeper knows about its lease at the moment of asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseFacts {
    /// Whether a fleet is configured at all.
    pub fleet: bool,
    /// A config without credentials: it never campaigns.
    pub follower_only: bool,
    /// The lease is held and a mint request (`dhan_timeout`) fits inside it.
    pub may_start: bool,
    /// The lease is held.
    pub may_act: bool,
    /// This node held the lease last and nobody is known to have taken it (Redis unreachable).
    pub last_holder: bool,
}

/// The decision for `asker`. Pure.
pub fn before_mint(l: LeaseFacts, asker: Asker) -> MintDecision {
    if !l.fleet {
        return MintDecision::Mint;
    }
    if l.follower_only {
        return MintDecision::Wait(Waiting::Follower);
    }
    if l.may_start {
        return MintDecision::Mint;
    }
    if l.may_act {
        return MintDecision::Wait(Waiting::LeaseTooShort);
    }
    match (l.last_holder, asker) {
        // Only a person who said `force`: this host may merely be cut off from a Redis that
        // others still reach, and one of them may lead and mint.
        (true, Asker::AdminForced) => MintDecision::Override,
        (true, Asker::Admin | Asker::Schedule) => MintDecision::Wait(Waiting::RedisUnreachable),
        (false, _) => MintDecision::Wait(Waiting::Follower),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_holder_mints_and_only_a_human_overrides_an_outage() {
        use Asker::{Admin, AdminForced, Schedule};
        use MintDecision::{Mint, Override, Wait};
        let f = |fleet, follower_only, may_start, may_act, last_holder| LeaseFacts {
            fleet,
            follower_only,
            may_start,
            may_act,
            last_holder,
        };
        // (facts, asker, decision)
        let table = [
            (f(false, false, false, false, false), Schedule, Mint),
            (f(false, false, false, false, false), Admin, Mint),
            (f(true, true, false, false, false), Admin, Wait(Waiting::Follower)),
            (f(true, false, true, true, true), Schedule, Mint),
            (f(true, false, false, true, true), Schedule, Wait(Waiting::LeaseTooShort)),
            (f(true, false, false, true, true), Admin, Wait(Waiting::LeaseTooShort)),
            (f(true, false, false, false, true), Schedule, Wait(Waiting::RedisUnreachable)),
            (f(true, false, false, false, true), Admin, Wait(Waiting::RedisUnreachable)),
            (f(true, false, false, false, true), AdminForced, Override),
            (f(true, false, false, false, false), Schedule, Wait(Waiting::Follower)),
            (f(true, false, false, false, false), Admin, Wait(Waiting::Follower)),
            (f(true, false, false, false, false), AdminForced, Wait(Waiting::Follower)),
            (f(true, true, false, false, true), AdminForced, Wait(Waiting::Follower)),
        ];
        for (facts, asker, want) in table {
            assert_eq!(before_mint(facts, asker), want, "{facts:?} {asker:?}");
        }
    }
}
