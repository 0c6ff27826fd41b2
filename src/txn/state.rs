//! One transactional id's state, as Kafka's TransactionMetadata keeps it: the current durable state
//! and at most one pending transition. A transition is prepared in memory (`prepare_*` returns the
//! [`Transit`] to write and marks it pending; no other transition may start meanwhile), written to
//! `__transaction_state`, then completed ([`TxnMetadata::complete`]) or dropped on a failed write
//! ([`TxnMetadata::abort_pending`]). Pure: no I/O, no clock, no locks.

use std::collections::BTreeSet;

use super::error::TxnError;
use super::records::TxnLogValue;

/// Kafka's TransactionState, with its on-disk codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_code(code: i8) -> Option<TxnState> {
        Some(match code {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name DescribeTransactions / ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Kafka's `validPreviousStates`.
    fn may_follow(self, from: TxnState) -> bool {
        use TxnState::*;
        match self {
            Empty | Dead => matches!(from, Empty | CompleteCommit | CompleteAbort),
            Ongoing => matches!(from, Ongoing | Empty | CompleteCommit | CompleteAbort),
            PrepareCommit | PrepareEpochFence => from == Ongoing,
            // Transactions V2 may abort with no transaction open (the client cannot know whether
            // its Produce requests opened one).
            PrepareAbort => matches!(
                from,
                Ongoing | PrepareEpochFence | Empty | CompleteCommit | CompleteAbort
            ),
            CompleteCommit => from == PrepareCommit,
            CompleteAbort => from == PrepareAbort,
        }
    }

    /// Whether the transaction's outcome is decided and its markers are being written.
    pub fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// No producer epoch (Kafka's `RecordBatch.NO_PRODUCER_EPOCH`).
pub const NO_EPOCH: i16 = -1;
/// No producer id.
pub const NO_PRODUCER_ID: i64 = -1;

/// Kafka's `transaction.version` feature levels: 0 and 1 end a transaction at the producer's epoch;
/// 2 (Transactions V2, KIP-890 part 2) bumps the epoch with every EndTxn and adds partitions
/// implicitly (Produce v12, TxnOffsetCommit v5).
pub const TV_2: i16 = 2;

/// Whether transactions of client transaction version `tv` bump the epoch at their end.
pub fn bumps_epoch(tv: i16) -> bool {
    tv >= TV_2
}

/// An epoch at which the producer id must be replaced rather than bumped (Kafka keeps
/// `Short.MaxValue` for the fencing bump).
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

pub type TopicPartition = (String, i32);

/// The fields a transition writes; [`TxnMetadata`] takes them on once the write is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transit {
    pub producer_id: i64,
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    /// The producer id a Transactions V2 end hands out when the epoch is exhausted (-1: none).
    pub next_producer_id: i64,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    pub start_ms: i64,
    pub last_update_ms: i64,
    /// The transaction version of the client request that made this transition.
    pub client_tv: i16,
}

impl Transit {
    /// The record value Kafka writes for this transition (partitions grouped by topic).
    pub fn to_value(&self) -> TxnLogValue {
        let mut partitions: Vec<(String, Vec<i32>)> = Vec::new();
        for (topic, p) in &self.partitions {
            match partitions.last_mut() {
                Some((t, ids)) if t == topic => ids.push(*p),
                _ => partitions.push((topic.clone(), vec![*p])),
            }
        }
        TxnLogValue {
            producer_id: self.producer_id,
            previous_producer_id: self.last_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions,
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
            client_transaction_version: self.client_tv,
        }
    }

    /// The producer id and epoch the client continues with once this transition is durable: a
    /// Transactions V2 end hands out the bumped epoch, or the next producer id at epoch 0.
    pub fn handed_out(&self) -> (i64, i16) {
        if self.next_producer_id != NO_PRODUCER_ID {
            (self.next_producer_id, 0)
        } else {
            (self.producer_id, self.producer_epoch)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last rotation (a retried InitProducerId may still name it).
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump, so that a retried InitProducerId (KIP-360) is recognised.
    pub last_producer_epoch: i16,
    /// See [`Transit::next_producer_id`].
    pub next_producer_id: i64,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    pub start_ms: i64,
    pub last_update_ms: i64,
    /// The transaction version of the client request behind the last transition.
    pub client_tv: i16,
    /// The transition being written, if any.
    pub pending: Option<TxnState>,
}

impl TxnMetadata {
    /// A transactional id seen for the first time: Empty, no epoch yet (the first bump gives 0).
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_EPOCH,
            last_producer_epoch: NO_EPOCH,
            next_producer_id: NO_PRODUCER_ID,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            client_tv: 0,
            pending: None,
        }
    }

    /// The state a replayed record leaves.
    pub fn from_value(transactional_id: &str, v: &TxnLogValue) -> Self {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id: v.producer_id,
            last_producer_id: v.previous_producer_id,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: NO_EPOCH,
            next_producer_id: v.next_producer_id,
            timeout_ms: v.timeout_ms,
            state: v.state,
            partitions: v
                .partitions
                .iter()
                .flat_map(|(t, ids)| ids.iter().map(move |p| (t.clone(), *p)))
                .collect(),
            start_ms: v.start_ms,
            last_update_ms: v.last_update_ms,
            client_tv: v.client_transaction_version,
            pending: None,
        }
    }

    /// The current state as a transition (what a replayed Prepare* resumes its markers from).
    pub fn transit(&self) -> Transit {
        Transit {
            producer_id: self.producer_id,
            last_producer_id: self.last_producer_id,
            producer_epoch: self.producer_epoch,
            last_producer_epoch: self.last_producer_epoch,
            next_producer_id: self.next_producer_id,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: self.partitions.clone(),
            start_ms: self.start_ms,
            last_update_ms: self.last_update_ms,
            client_tv: self.client_tv,
        }
    }

    /// Marks `to` pending after checking it may follow the current state.
    fn prepare(&mut self, to: Transit) -> Result<Transit, TxnError> {
        if self.pending.is_some() {
            return Err(TxnError::ConcurrentTransactions);
        }
        if !to.state.may_follow(self.state) {
            tracing::warn!(transactional_id = %self.transactional_id, from = self.state.name(),
                to = to.state.name(), "illegal transaction state transition refused");
            return Err(TxnError::InvalidTxnState);
        }
        self.pending = Some(to.state);
        Ok(to)
    }

    /// InitProducerId's epoch bump (Kafka's `prepareIncrementProducerEpoch`, KIP-360): without an
    /// expected epoch a plain bump; with one, a bump if it is the current epoch (or there is none
    /// yet), the current epoch again if it is the last one (a retry whose answer was lost), else
    /// PRODUCER_FENCED. The epoch must not be exhausted (rotate the producer id instead).
    pub fn prepare_increment_epoch(
        &mut self,
        timeout_ms: i32,
        expected_epoch: Option<i16>,
        now_ms: i64,
    ) -> Result<Transit, TxnError> {
        if epoch_exhausted(self.producer_epoch) {
            return Err(TxnError::UnknownServerError);
        }
        let bumped = self.producer_epoch + 1;
        let (epoch, last) = match expected_epoch {
            None => (bumped, NO_EPOCH),
            Some(e) if self.producer_epoch == NO_EPOCH || e == self.producer_epoch => {
                (bumped, self.producer_epoch)
            }
            Some(e) if e == self.last_producer_epoch => {
                (self.producer_epoch, self.last_producer_epoch)
            }
            Some(_) => return Err(TxnError::ProducerFenced),
        };
        let to = Transit {
            producer_epoch: epoch,
            last_producer_epoch: last,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            ..self.transit()
        };
        self.prepare(to)
    }

    /// A new producer id at epoch 0 once the epoch is exhausted (`prepareProducerIdRotation`).
    pub fn prepare_producer_id_rotation(
        &mut self,
        new_producer_id: i64,
        timeout_ms: i32,
        now_ms: i64,
        record_last_epoch: bool,
    ) -> Result<Transit, TxnError> {
        let to = Transit {
            producer_id: new_producer_id,
            last_producer_id: self.producer_id,
            producer_epoch: 0,
            last_producer_epoch: if record_last_epoch {
                self.producer_epoch
            } else {
                NO_EPOCH
            },
            next_producer_id: NO_PRODUCER_ID,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            client_tv: self.client_tv,
        };
        self.prepare(to)
    }

    /// Fences the producer of an open transaction before aborting it (InitProducerId from a new
    /// producer, or a timeout): the epoch is bumped in memory now, so that the old producer's
    /// requests are refused from here on, and PrepareEpochFence is pending until the abort takes
    /// over ([`TxnMetadata::prepare_abort_or_commit`]). Under V1 the bumped epoch is never handed to a
    /// client; under V2 the fenced producer's own abort gets it (the retry of that end), as in Kafka.
    pub fn prepare_fence_epoch(&mut self) -> Result<(), TxnError> {
        if self.pending.is_some() {
            return Err(TxnError::ConcurrentTransactions);
        }
        if !TxnState::PrepareEpochFence.may_follow(self.state) {
            return Err(TxnError::InvalidTxnState);
        }
        self.producer_epoch = self.producer_epoch.saturating_add(1);
        self.pending = Some(TxnState::PrepareEpochFence);
        Ok(())
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: Ongoing with `added` included; the transaction
    /// starts now if it was not open.
    pub fn prepare_add_partitions(
        &mut self,
        added: impl IntoIterator<Item = TopicPartition>,
        now_ms: i64,
        client_tv: i16,
    ) -> Result<Transit, TxnError> {
        let start_ms = match self.state {
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => now_ms,
            _ => self.start_ms,
        };
        let mut partitions = self.partitions.clone();
        partitions.extend(added);
        let to = Transit {
            state: TxnState::Ongoing,
            partitions,
            start_ms,
            last_update_ms: now_ms,
            client_tv,
            ..self.transit()
        };
        self.prepare(to)
    }

    /// EndTxn or an abort by the coordinator: PrepareCommit or PrepareAbort. An abort that follows
    /// an epoch fence takes over its pending state and writes the fenced epoch. Under Transactions
    /// V2 (`client_tv` 2) the end bumps the epoch (the fence's bump is that bump), and
    /// `next_producer_id` (or -1) is the id handed out instead when the epoch is exhausted; an
    /// abort may come with no transaction open (`start_ms` is then now).
    pub fn prepare_abort_or_commit(
        &mut self,
        commit: bool,
        now_ms: i64,
        client_tv: i16,
        next_producer_id: i64,
    ) -> Result<Transit, TxnError> {
        let state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        let fenced = !commit && self.pending == Some(TxnState::PrepareEpochFence);
        if fenced {
            self.pending = None;
        }
        let (epoch, last_epoch) = match (bumps_epoch(client_tv), fenced) {
            (false, false) => (self.producer_epoch, self.last_producer_epoch),
            (false, true) => (self.producer_epoch, NO_EPOCH),
            (true, false) => (self.producer_epoch.saturating_add(1), self.producer_epoch),
            (true, true) => (self.producer_epoch, self.producer_epoch.saturating_sub(1)),
        };
        let no_transaction_open = self.state != TxnState::Ongoing;
        let to = Transit {
            state,
            producer_epoch: epoch,
            last_producer_epoch: last_epoch,
            next_producer_id,
            start_ms: if no_transaction_open {
                now_ms
            } else {
                self.start_ms
            },
            last_update_ms: now_ms,
            client_tv,
            ..self.transit()
        };
        self.prepare(to)
    }

    /// Every marker is written: CompleteCommit or CompleteAbort, no partitions left.
    pub fn prepare_complete(&mut self, now_ms: i64) -> Result<Transit, TxnError> {
        let state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return Err(TxnError::InvalidTxnState),
        };
        // A Transactions V2 end that exhausted the epoch moves to the next producer id at epoch 0.
        let rotated = bumps_epoch(self.client_tv) && self.next_producer_id != NO_PRODUCER_ID;
        let to = Transit {
            state,
            partitions: BTreeSet::new(),
            last_update_ms: now_ms,
            ..self.transit()
        };
        let to = if rotated {
            Transit {
                producer_id: self.next_producer_id,
                last_producer_id: self.producer_id,
                producer_epoch: 0,
                last_producer_epoch: self.last_producer_epoch,
                next_producer_id: NO_PRODUCER_ID,
                ..to
            }
        } else {
            to
        };
        self.prepare(to)
    }

    /// Expiry of an idle transactional id (a tombstone is written).
    pub fn prepare_dead(&mut self) -> Result<Transit, TxnError> {
        let to = Transit {
            state: TxnState::Dead,
            partitions: BTreeSet::new(),
            ..self.transit()
        };
        self.prepare(to)
    }

    /// The pending transition `to` is durable: take it on. False (and nothing changes) when `to`
    /// is not what is pending, e.g. after an unload and reload in between.
    pub fn complete(&mut self, to: &Transit) -> bool {
        if self.pending != Some(to.state) {
            return false;
        }
        self.pending = None;
        self.producer_id = to.producer_id;
        self.last_producer_id = to.last_producer_id;
        self.producer_epoch = to.producer_epoch;
        self.last_producer_epoch = to.last_producer_epoch;
        self.next_producer_id = to.next_producer_id;
        self.client_tv = to.client_tv;
        self.timeout_ms = to.timeout_ms;
        self.state = to.state;
        self.partitions = to.partitions.clone();
        self.start_ms = to.start_ms;
        self.last_update_ms = to.last_update_ms;
        true
    }

    /// The write of the pending transition failed: nothing changes but the pending mark.
    pub fn abort_pending(&mut self) {
        self.pending = None;
    }
}
