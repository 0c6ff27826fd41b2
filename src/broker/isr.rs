//! What a partition's leader knows of its followers (Kafka's `Replica` and the ISR half of its
//! `Partition`): each follower's log end offset as its fetches report it and when it was last caught
//! up, the ISR change waiting for the controller, and from these the high watermark (the least log
//! end offset in the ISR), which ISR members fell behind and which followers may join.

use std::collections::HashMap;

/// One follower as its fetches show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Follower {
    /// The offset of its last fetch, its log end; -1 until it fetches at this leader epoch.
    log_end_offset: i64,
    /// The last time it had everything the leader had (Kafka's `lastCaughtUpTimeMs`).
    last_caught_up_ms: i64,
    /// The leader's log end and the time at its previous fetch.
    last_fetch_leader_end: i64,
    last_fetch_ms: i64,
    /// The broker epoch it fetched with (KIP-903), -1 unknown.
    broker_epoch: i64,
}

/// The leader's tracking, reset whenever this broker becomes leader.
#[derive(Debug, Default)]
pub struct IsrTracker {
    followers: HashMap<i32, Follower>,
    /// The ISR asked of the controller and not yet answered, with the partition epoch it was based
    /// on. Until the answer the high watermark counts the larger of both ISRs (Kafka's maximal
    /// ISR), so a shrink cannot expose records the leaving replica may be counted for, nor an
    /// expansion advance it past what the joining one has.
    pending: Option<(i32, Vec<i32>)>,
    /// The log end offset when this leadership began: a follower joins only once it has it.
    epoch_start_offset: i64,
}

impl IsrTracker {
    /// A new leadership: nothing known of the followers' logs; the ISR members count as caught up
    /// now, so that they are not dropped before they could fetch (Kafka's `resetReplicaState`).
    pub fn reset(&mut self, replicas: &[i32], isr: &[i32], me: i32, now_ms: i64, leo: i64) {
        self.followers = replicas
            .iter()
            .filter(|r| **r != me)
            .map(|r| {
                let caught_up = if isr.contains(r) { now_ms } else { 0 };
                let state = Follower {
                    log_end_offset: -1,
                    last_caught_up_ms: caught_up,
                    last_fetch_leader_end: -1,
                    last_fetch_ms: caught_up,
                    broker_epoch: -1,
                };
                (*r, state)
            })
            .collect();
        self.pending = None;
        self.epoch_start_offset = leo;
    }

    /// Forgets the answer being waited for (the ISR in force moved: it came, or another change won).
    pub fn clear_pending_unless(&mut self, partition_epoch: i32) {
        if self
            .pending
            .as_ref()
            .is_some_and(|(e, _)| *e != partition_epoch)
        {
            self.pending = None;
        }
    }

    /// The controller answered the change based on `partition_epoch` (or it could not be sent).
    pub fn answered(&mut self, partition_epoch: i32) {
        if self
            .pending
            .as_ref()
            .is_some_and(|(e, _)| *e == partition_epoch)
        {
            self.pending = None;
        }
    }

    #[cfg(test)]
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Records a follower's fetch at `fetch_offset` (Kafka's `updateFetchStateOrThrow`): it is caught
    /// up if it fetched at the leader's end, or at least at the end the leader had at its previous
    /// fetch (then it was caught up as of that fetch).
    pub fn record_fetch(
        &mut self,
        replica: i32,
        broker_epoch: i64,
        fetch_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) {
        let Some(f) = self.followers.get_mut(&replica) else {
            return;
        };
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= f.last_fetch_leader_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end_offset = fetch_offset;
        f.last_fetch_leader_end = leader_end;
        f.last_fetch_ms = now_ms;
        f.broker_epoch = broker_epoch;
    }

    /// The ISR the high watermark is computed over: the one in force, plus a joining replica.
    fn maximal_isr<'a>(&'a self, isr: &'a [i32]) -> impl Iterator<Item = i32> + 'a {
        let joining = self
            .pending
            .iter()
            .flat_map(|(_, new)| new.iter().copied())
            .filter(move |r| !isr.contains(r));
        isr.iter().copied().chain(joining)
    }

    /// The high watermark the ISR allows: the least log end offset among its members (this broker's
    /// is `leo`), `None` while fewer than `min_insync` replicas are in the ISR (KIP-966: a
    /// too-small ISR does not commit anything).
    pub fn high_watermark(&self, isr: &[i32], me: i32, leo: i64, min_insync: i32) -> Option<i64> {
        if (isr.len() as i32) < min_insync {
            return None;
        }
        self.maximal_isr(isr)
            .map(|r| {
                if r == me {
                    leo
                } else {
                    self.followers.get(&r).map_or(-1, |f| f.log_end_offset)
                }
            })
            .min()
    }

    /// The ISR without the members that have not caught up for `lag_max_ms` (Kafka's
    /// `getOutOfSyncReplicas`), if any fell behind and no change is pending.
    pub fn shrunk_isr(
        &self,
        isr: &[i32],
        me: i32,
        now_ms: i64,
        lag_max_ms: i64,
    ) -> Option<Vec<i32>> {
        if self.pending.is_some() {
            return None;
        }
        let lagging = |r: &i32| {
            *r != me
                && self
                    .followers
                    .get(r)
                    .is_some_and(|f| now_ms - f.last_caught_up_ms > lag_max_ms)
        };
        isr.iter()
            .any(lagging)
            .then(|| isr.iter().copied().filter(|r| !lagging(r)).collect())
    }

    /// The ISR with `replica` added, if it is out of it, caught up to the high watermark and to
    /// this leadership's start (Kafka's `isFollowerInSync`), and no change is pending.
    pub fn expanded_isr(&self, isr: &[i32], replica: i32, high_watermark: i64) -> Option<Vec<i32>> {
        if self.pending.is_some() || isr.contains(&replica) {
            return None;
        }
        let f = self.followers.get(&replica)?;
        let in_sync =
            f.log_end_offset >= high_watermark && f.log_end_offset >= self.epoch_start_offset;
        in_sync.then(|| isr.iter().copied().chain([replica]).collect())
    }

    /// Marks `new_isr` as asked of the controller, based on `partition_epoch`.
    pub fn set_pending(&mut self, partition_epoch: i32, new_isr: Vec<i32>) {
        self.pending = Some((partition_epoch, new_isr));
    }

    /// The broker epoch `replica` last fetched with (-1 unknown).
    pub fn broker_epoch(&self, replica: i32) -> i64 {
        self.followers.get(&replica).map_or(-1, |f| f.broker_epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> IsrTracker {
        let mut t = IsrTracker::default();
        t.reset(&[1, 2, 3], &[1, 2, 3], 1, 1_000, 10);
        t
    }

    #[test]
    fn the_high_watermark_is_the_least_log_end_in_the_isr() {
        let mut t = tracker();
        // Nothing known of the followers yet: nothing committed beyond what was.
        assert_eq!(t.high_watermark(&[1, 2, 3], 1, 10, 2), Some(-1));
        t.record_fetch(2, 5, 10, 10, 1_001);
        t.record_fetch(3, 6, 7, 10, 1_001);
        assert_eq!(t.high_watermark(&[1, 2, 3], 1, 10, 2), Some(7));
        assert_eq!(t.high_watermark(&[1, 2], 1, 12, 2), Some(10));
        // KIP-966: under min.insync.replicas nothing more is committed.
        assert_eq!(t.high_watermark(&[1], 1, 12, 2), None);
        assert_eq!(t.high_watermark(&[1], 1, 12, 1), Some(12));
        // A pending expansion counts the joining replica.
        t.set_pending(0, vec![1, 2, 3]);
        assert_eq!(t.high_watermark(&[1, 2], 1, 12, 2), Some(7));
    }

    #[test]
    fn followers_that_stop_catching_up_leave_and_caught_up_ones_join() {
        let mut t = tracker();
        // 2 keeps up; 3 fetches once behind and then not at all.
        t.record_fetch(2, 5, 10, 10, 2_000);
        t.record_fetch(3, 6, 4, 10, 2_000);
        assert_eq!(t.shrunk_isr(&[1, 2, 3], 1, 3_500, 3_000), None);
        assert_eq!(t.shrunk_isr(&[1, 2, 3], 1, 4_001, 3_000), Some(vec![1, 2]));
        // Behind at its fetch, but at the end the leader had at its previous one: caught up then.
        t.record_fetch(3, 6, 10, 14, 4_500);
        assert_eq!(t.shrunk_isr(&[1, 2, 3], 1, 4_900, 3_000), None);
        // Joining needs the high watermark and the leadership's start offset.
        assert_eq!(t.expanded_isr(&[1, 2], 3, 11), None);
        assert_eq!(t.expanded_isr(&[1, 2], 3, 10), Some(vec![1, 2, 3]));
        t.set_pending(4, vec![1, 2, 3]);
        assert_eq!(t.expanded_isr(&[1, 2], 3, 10), None, "one change at a time");
        t.clear_pending_unless(4);
        assert!(t.is_pending());
        t.clear_pending_unless(5);
        assert!(!t.is_pending());
        assert_eq!(t.broker_epoch(3), 6);
    }
}
