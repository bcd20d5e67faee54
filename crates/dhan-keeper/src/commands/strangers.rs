//! Unknown chats: logged every time, named to the admin at most once per chat per hour and at
//! most [`STRANGERS_TOLD`] chats one by one per hour; beyond that, a digest at most every
//! [`DIGEST_EVERY`] counts the rest, so a flood of strangers never buries the admin's replies.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

/// Unknown chats named to the admin one by one per hour; beyond that, digests.
pub const STRANGERS_TOLD: u32 = 3;
/// The shortest gap between two digests of further unknown chats.
pub const DIGEST_EVERY: chrono::Duration = chrono::Duration::minutes(10);
/// Unknown chats remembered at once (older than the hour are forgotten first).
const STRANGERS_KEPT: usize = 10_000;

/// What to tell the admin about a stranger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// This chat, by itself.
    One,
    /// `count` unknown chats since the last notice, some of their ids.
    Digest { count: u32, ids: Vec<i64> },
}

/// Which unknown chats were seen, and how much the admin was told this hour.
#[derive(Debug, Default)]
pub(crate) struct Strangers {
    seen: HashMap<i64, DateTime<Utc>>,
    window: Option<DateTime<Utc>>,
    told: u32,
    held: u32,
    held_ids: Vec<i64>,
    last_digest: Option<DateTime<Utc>>,
    last_prune: Option<DateTime<Utc>>,
}

impl Strangers {
    /// Records `chat` writing at `now`; says what (if anything) the admin should hear.
    pub(crate) fn on_message(&mut self, chat: i64, now: DateTime<Utc>) -> Option<Notice> {
        let hour = chrono::Duration::hours(1);
        // Forget notices older than the hour, so a flood of new chat ids cannot grow this; once a
        // minute (or when full) rather than on every message, which would cost O(n) each.
        if self.last_prune.is_none_or(|t| now - t >= chrono::Duration::minutes(1)) || self.seen.len() >= STRANGERS_KEPT
        {
            self.seen.retain(|_, t| now - *t < hour);
            self.last_prune = Some(now);
        }
        if self.seen.get(&chat).is_some_and(|t| now - *t < hour) || self.seen.len() >= STRANGERS_KEPT {
            return None;
        }
        self.seen.insert(chat, now);
        if self.window.is_none_or(|w| now - w >= hour) {
            self.window = Some(now);
            self.told = 0;
        }
        if self.told < STRANGERS_TOLD {
            self.told += 1;
            return Some(Notice::One);
        }
        self.held += 1;
        if self.held_ids.len() < 5 {
            self.held_ids.push(chat);
        }
        if self.last_digest.is_some_and(|t| now - t < DIGEST_EVERY) {
            return None;
        }
        self.last_digest = Some(now);
        let count = std::mem::take(&mut self.held);
        Some(Notice::Digest { count, ids: std::mem::take(&mut self.held_ids) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stranger_notices_are_capped_then_digested() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-25T10:00:00+05:30").expect("valid").with_timezone(&Utc);
        let m = chrono::Duration::minutes;
        let mut st = Strangers::default();
        let mut notices = Vec::new();
        for i in 0..2000 {
            notices.extend(st.on_message(1_000 + i, t0));
        }
        assert_eq!(
            notices,
            vec![Notice::One, Notice::One, Notice::One, Notice::Digest { count: 1, ids: vec![1_003] }],
            "2,000 chats at once: three named, one digest"
        );
        assert_eq!(st.on_message(1_000, t0 + m(5)), None, "a chat already named is not named again within the hour");
        assert_eq!(st.on_message(5_000, t0 + m(9)), None, "digests are at least ten minutes apart");
        match st.on_message(5_001, t0 + m(10)) {
            Some(Notice::Digest { count, ids }) => {
                assert_eq!(count, 1998, "every held chat is counted");
                assert_eq!(ids.len(), 5);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(st.on_message(6_000, t0 + m(61)), Some(Notice::One), "a new hour names chats again");
        assert!(st.seen.len() <= STRANGERS_KEPT);
    }
}
