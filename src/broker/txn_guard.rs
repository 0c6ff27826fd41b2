//! Transaction verification state of a partition (Kafka's `VerificationGuard`, KIP-890 part 1):
//! before a producer's first transactional batch here, its leader asks the transaction coordinator
//! whether the partition is in the producer's ongoing transaction, holding a guard meanwhile. The
//! batch is appended only if the guard is still in place, under the log lock: a marker for the
//! producer in between (its transaction ended) takes the guard away, so a late batch cannot open a
//! transaction that no coordinator will end. Under Transactions V2 the guard of a producer's next
//! transaction (at the bumped epoch) outlives the marker that ends its previous one, which carries
//! that same bumped epoch (Kafka's `isV2NextTransactionStarted`).

use std::collections::HashMap;

use super::partition::Partition;
use super::replica::ReplicaError;

/// One verification begun: whose, and which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnGuard {
    pub producer_id: i64,
    token: u64,
}

/// A guard in place: its token, the epoch of the batch it is for, and whether the coordinator is
/// asked to add the partition (a Transactions V2 client, whose epochs bump per transaction).
#[derive(Debug, Clone, Copy)]
struct Held {
    token: u64,
    epoch: i16,
    bumps_epoch: bool,
}

/// The guards in place, by producer id.
#[derive(Debug, Default)]
pub struct TxnGuards {
    next: u64,
    by_producer: HashMap<i64, Held>,
}

impl TxnGuards {
    /// A verification of `producer_id`'s batch at `epoch`; verifications in flight together share
    /// one guard (Kafka's `maybeCreateVerificationStateEntry`), a newer epoch replaces it.
    fn begin(&mut self, producer_id: i64, epoch: i16, bumps_epoch: bool) -> TxnGuard {
        if let Some(held) = self.by_producer.get(&producer_id) {
            if held.epoch >= epoch {
                return TxnGuard {
                    producer_id,
                    token: held.token,
                };
            }
        }
        self.next += 1;
        let held = Held {
            token: self.next,
            epoch,
            bumps_epoch,
        };
        self.by_producer.insert(producer_id, held);
        TxnGuard {
            producer_id,
            token: self.next,
        }
    }

    /// The batch guarded by `guard` may go in; its producer's transaction is open from then on, so
    /// the guard is done with. A guard replaced or removed since refuses.
    pub fn take(&mut self, guard: TxnGuard) -> Result<(), ReplicaError> {
        match self.by_producer.get(&guard.producer_id) {
            Some(held) if held.token == guard.token => {
                self.by_producer.remove(&guard.producer_id);
                Ok(())
            }
            _ => Err(ReplicaError::TxnVerificationLost),
        }
    }

    /// A marker at `marker_epoch` ended `producer_id`'s transaction: a verification in flight is
    /// void, unless it is a Transactions V2 one for the transaction this marker's bumped epoch
    /// began.
    pub fn clear(&mut self, producer_id: i64, marker_epoch: i16) {
        let next_started = self
            .by_producer
            .get(&producer_id)
            .is_some_and(|h| h.bumps_epoch && h.epoch == marker_epoch);
        if !next_started {
            self.by_producer.remove(&producer_id);
        }
    }
}

impl Partition {
    /// `None` when `producer_id` already has a transaction open in this partition at
    /// `producer_epoch` (its batches need no verification); otherwise the guard to append with once
    /// the coordinator has confirmed (or, with `bumps_epoch`, made) the partition part of its
    /// transaction.
    pub fn begin_txn_verification(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        bumps_epoch: bool,
    ) -> Option<TxnGuard> {
        let log = self.lock();
        let open = log
            .producer_state()
            .get(producer_id)
            .is_some_and(|e| e.epoch == producer_epoch && e.current_txn_first_offset.is_some());
        if open {
            return None;
        }
        let mut guards = self.lock_txn_guards();
        Some(guards.begin(producer_id, producer_epoch, bumps_epoch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_voids_the_guard_of_its_transaction_but_not_of_the_next_v2_one() {
        let mut g = TxnGuards::default();
        // V1: a marker for the producer (same epoch) voids a verification in flight.
        let v1 = g.begin(7, 3, false);
        g.clear(7, 3);
        assert!(g.take(v1).is_err());
        // V2: the marker ending the previous transaction carries the bumped epoch the next
        // transaction's batch has; its guard survives it, but not a later marker.
        let v2 = g.begin(7, 4, true);
        g.clear(7, 4);
        assert!(g.take(v2).is_ok(), "the next transaction's guard survives");
        let v2 = g.begin(7, 5, true);
        g.clear(7, 6);
        assert!(g.take(v2).is_err(), "a marker of a later epoch voids it");
    }

    #[test]
    fn verifications_in_flight_together_share_a_guard_and_a_newer_epoch_replaces_it() {
        let mut g = TxnGuards::default();
        let a = g.begin(7, 3, false);
        let b = g.begin(7, 3, false);
        assert_eq!(a, b);
        let older = g.begin(7, 2, false);
        assert_eq!(older, a, "an older epoch does not displace the guard");
        let newer = g.begin(7, 4, true);
        assert_ne!(newer, a);
        assert!(g.take(a).is_err());
        assert!(g.take(newer).is_ok());
        assert!(g.take(newer).is_err(), "taken once");
        // Other producers are apart.
        let other = g.begin(8, 3, false);
        g.clear(7, 9);
        assert!(g.take(other).is_ok());
    }
}
