//! Transactional offset commits (TxnOffsetCommit, KIP-98/447): offsets a transactional producer
//! commits for a group stay pending until its transaction's marker lands on the group's
//! `__consumer_offsets` partition, then become committed (commit) or vanish (abort). As Kafka's
//! group coordinator (`OffsetMetadataManager.commitTransactionalOffset`): the records are one
//! transactional batch of the producer, whose epoch the log checks; a committed transaction's
//! offset replaces a committed offset only if its record was written after it.

use std::collections::{HashMap, HashSet};
use std::sync::MutexGuard;

use tokio::sync::oneshot;
use tracing::debug;

use super::coordinator::GroupCoordinator;
use super::error::GroupError;
use super::group::{Committed, Group, GroupState};
use super::offset_ops::{CommitPartition, PartitionResults};
use super::records::{partition_for, OffsetValue, RecordKey};
use super::store::stored_error;
use crate::broker::coordinator_shards::ShardStatus;
use crate::broker::internal_topic::TxnAppendError;

/// A TxnOffsetCommit as the coordinator takes it. Versions 0-2 carry no group metadata
/// (generation -1, empty member id, no instance id); v3 (KIP-447) does, and it is checked.
pub struct TxnCommit {
    pub transactional_id: String,
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub topics: Vec<(String, Vec<CommitPartition>)>,
    /// The verification (KIP-890) the offsets partition was cleared under, if one was needed: the
    /// write is refused (INVALID_TXN_STATE) if the producer's transaction ended since.
    pub guard: Option<crate::broker::TxnGuard>,
}

/// What the coordinator keeps about transactions beside the groups, so that a marker does not
/// visit every group. Taken under the groups' lock only.
#[derive(Default)]
pub(super) struct TxnBook {
    /// Producer id -> the groups it wrote pending offsets of (an entry may be stale: a group's own
    /// `pending_txn` decides).
    open: HashMap<i64, HashSet<String>>,
    /// Markers (offsets partition, producer id, commit) committed on a partition still loading.
    pub(super) deferred: Vec<(i32, i64, bool)>,
}

/// A pending offset a commit put in memory, and what it replaced.
struct Applied {
    key: (String, i32),
    before: Option<Committed>,
    ours: Committed,
}

type Stored = oneshot::Receiver<Result<(), GroupError>>;

impl GroupCoordinator {
    /// TxnOffsetCommit. Partitions of unknown topics are answered UNKNOWN_TOPIC_OR_PARTITION and go
    /// no further (as KafkaApis does); an error of the group or of the write applies to every
    /// other partition. Answered once the batch is committed by the ISR (or has failed).
    pub async fn commit_txn_offsets(&self, req: TxnCommit) -> PartitionResults {
        let mut results: PartitionResults = Vec::new();
        let mut valid = Vec::new();
        for (topic, partitions) in req.topics {
            let (known, unknown): (Vec<_>, Vec<_>) = partitions
                .into_iter()
                .partition(|p| self.topic_has_partition(&topic, p.partition));
            if !unknown.is_empty() {
                let errors = unknown
                    .iter()
                    .map(|p| (p.partition, Err(GroupError::UnknownTopicOrPartition)))
                    .collect();
                results.push((topic.clone(), errors));
            }
            if !known.is_empty() {
                valid.push((topic, known));
            }
        }
        if valid.is_empty() {
            return results;
        }
        let requested: Vec<(String, Vec<i32>)> = valid
            .iter()
            .map(|(t, ps)| (t.clone(), ps.iter().map(|p| p.partition).collect()))
            .collect();
        let meta = TxnCommit {
            topics: Vec::new(),
            ..req
        };
        let outcome = match self.commit_txn_locked(&meta, valid) {
            Ok((answered, stored)) => stored
                .await
                .unwrap_or(Err(GroupError::CoordinatorNotAvailable))
                .map(|()| answered),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(answered) => results.extend(answered),
            Err(e) => {
                debug!(group = %meta.group_id, transactional_id = %meta.transactional_id,
                    producer_id = meta.producer_id, error = %e, "transactional offset commit refused");
                results.extend(requested.into_iter().map(|(t, ps)| {
                    let errors = ps.into_iter().map(|p| (p, Err(e.clone()))).collect();
                    (t, errors)
                }));
            }
        }
        results
    }

    fn commit_txn_locked(
        &self,
        req: &TxnCommit,
        topics: Vec<(String, Vec<CommitPartition>)>,
    ) -> Result<(PartitionResults, Stored), GroupError> {
        let group_id = req.group_id.as_str();
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let mut groups = self.lock();
        self.check_coordinator_for_write(group_id)?;
        let now = self.now_ms();
        if !groups.contains_key(group_id) {
            // A simple group for commits from outside group management, as Kafka creates one.
            if req.generation >= 0 {
                return Err(GroupError::IllegalGeneration);
            }
            groups.insert(group_id.to_string(), Group::new(group_id, now));
        }
        let g = groups
            .get_mut(group_id)
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        validate(
            g,
            req.generation,
            &req.member_id,
            req.instance_id.as_deref(),
        )?;
        let mut results: PartitionResults = Vec::with_capacity(topics.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for (topic, partitions) in topics {
            let mut out = Vec::with_capacity(partitions.len());
            for p in partitions {
                let metadata = p.metadata.unwrap_or_default();
                if metadata.len() > self.config.offset_metadata_max_bytes {
                    out.push((p.partition, Err(GroupError::OffsetMetadataTooLarge)));
                    continue;
                }
                let value = OffsetValue {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata,
                    commit_timestamp: now,
                    expire_timestamp: None,
                };
                let key = RecordKey::Offset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: p.partition,
                };
                records.push((key.encode(), Some(value.encode())));
                let ours = Committed {
                    order: g.stamp(),
                    ..Committed::from(value)
                };
                accepted.push(((topic.clone(), p.partition), ours));
                out.push((p.partition, Ok(())));
            }
            results.push((topic, out));
        }
        let partition = partition_for(group_id, self.offsets.partition_count());
        let (pid, epoch) = (req.producer_id, req.producer_epoch);
        let pending = self
            .offsets
            .append_transactional(partition, records, now, pid, epoch, req.guard)
            .map_err(|e| stored_error(group_id, e))?;
        // Pending from now on (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT), as
        // Kafka's coordinator replays its own write at once; undone if the write fails.
        let applied: Vec<Applied> = if accepted.is_empty() {
            Vec::new()
        } else {
            self.note_open_txn(pid, group_id);
            let held = g.pending_txn.entry(pid).or_default();
            accepted
                .into_iter()
                .map(|(key, ours)| Applied {
                    before: held.insert(key.clone(), ours.clone()),
                    key,
                    ours,
                })
                .collect()
        };
        let group = group_id.to_string();
        let stored = async move {
            pending.wait_txn().await.map_err(|e| match e {
                TxnAppendError::InvalidProducerEpoch(m) => {
                    debug!(group = %group, producer_id = pid, "{m}");
                    GroupError::InvalidProducerEpoch
                }
                TxnAppendError::VerificationLost => GroupError::InvalidTxnState,
                TxnAppendError::Topic(e) => stored_error(&group, e),
            })
        };
        let (tx, rx) = oneshot::channel();
        let group = group_id.to_string();
        self.on_stored_with(stored, move |_, groups, result| {
            if result.is_err() {
                if let Some(g) = groups.get_mut(&group) {
                    undo(g, pid, applied);
                }
            }
            let _ = tx.send(result);
        });
        Ok((results, rx))
    }

    /// A commit or abort marker of `producer_id` was committed on `__consumer_offsets` partition
    /// `offsets_partition` (called by the broker after WriteTxnMarkers' append): its pending
    /// transactional offsets for the groups of that partition are applied or dropped. A marker
    /// on a partition still loading is applied once its groups are installed (the load may have
    /// read the log before the marker reached it).
    pub fn on_txn_marker(&self, offsets_partition: i32, producer_id: i64, commit: bool) {
        let mut groups = self.lock();
        match self.shards.status(offsets_partition) {
            ShardStatus::Active { .. } => {
                self.apply_marker(&mut groups, offsets_partition, producer_id, commit)
            }
            ShardStatus::Loading { .. } => {
                self.book()
                    .deferred
                    .push((offsets_partition, producer_id, commit))
            }
            // Its new leader replays the marker from the log.
            ShardStatus::NotLeader => debug!(
                partition = offsets_partition,
                producer_id, "transaction marker on an offsets partition not led here"
            ),
        }
    }

    pub(super) fn book(&self) -> MutexGuard<'_, TxnBook> {
        self.txn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `producer_id` holds (or may hold) pending offsets of `group`. Call it under the groups' lock.
    pub(super) fn note_open_txn(&self, producer_id: i64, group: &str) {
        self.book()
            .open
            .entry(producer_id)
            .or_default()
            .insert(group.to_string());
    }

    fn apply_marker(
        &self,
        groups: &mut HashMap<String, Group>,
        partition: i32,
        producer_id: i64,
        commit: bool,
    ) {
        let count = self.offsets.partition_count();
        let ours: Vec<String> = {
            let mut book = self.book();
            let Some(open) = book.open.get_mut(&producer_id) else {
                return;
            };
            let ours: Vec<String> = open
                .iter()
                .filter(|g| partition_for(g, count) == partition)
                .cloned()
                .collect();
            for g in &ours {
                open.remove(g);
            }
            if open.is_empty() {
                book.open.remove(&producer_id);
            }
            ours
        };
        for id in ours {
            let Some(g) = groups.get_mut(&id) else {
                continue;
            };
            let Some(pending) = g.pending_txn.remove(&producer_id) else {
                continue;
            };
            let n = pending.len();
            if commit {
                for (key, c) in pending {
                    commit_pending(g, key, c);
                }
            }
            debug!(group = %g.id, producer_id, offsets = n,
                "transactional offsets {}", if commit { "committed" } else { "aborted" });
        }
    }

    /// The markers that arrived while `partition` loaded, now that its groups are in `groups`.
    pub(super) fn apply_deferred_markers(
        &self,
        groups: &mut HashMap<String, Group>,
        partition: i32,
    ) {
        let mine: Vec<(i32, i64, bool)> = {
            let mut book = self.book();
            let mine = book
                .deferred
                .iter()
                .copied()
                .filter(|(p, _, _)| *p == partition)
                .collect();
            book.deferred.retain(|(p, _, _)| *p != partition);
            mine
        };
        for (p, pid, commit) in mine {
            self.apply_marker(groups, p, pid, commit);
        }
    }

    /// `partition` is no longer led here, nor are `groups` (its groups): markers waiting for its
    /// load, and the transactions of its groups, are its new leader's.
    pub(super) fn forget_txns_of(&self, partition: i32, groups: &[String]) {
        let mut book = self.book();
        book.deferred.retain(|(p, _, _)| *p != partition);
        for open in book.open.values_mut() {
            for g in groups {
                open.remove(g);
            }
        }
        book.open.retain(|_, open| !open.is_empty());
    }
}

/// Kafka's `ClassicGroup.validateOffsetCommit` for a transactional commit: group metadata, when
/// given, must name a current member of the current generation; unlike OffsetCommit, the group
/// state is not enforced and commits without metadata are taken in any state.
fn validate(
    g: &Group,
    generation: i32,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<(), GroupError> {
    if g.state == GroupState::Dead {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    if generation < 0 && g.state == GroupState::Empty {
        return Ok(());
    }
    if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
        if let Some(instance) = instance_id {
            match g.static_members.get(instance) {
                None => return Err(GroupError::UnknownMemberId),
                Some(m) if m != member_id => return Err(GroupError::FencedInstanceId),
                Some(_) => {}
            }
        }
        if !g.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if generation != g.generation {
            return Err(GroupError::IllegalGeneration);
        }
    }
    Ok(())
}

/// A committed transaction's offset of `key` replaces the committed one only if its record was
/// written after it (Kafka: so that compaction of the offsets topic cannot change the outcome).
fn commit_pending(g: &mut Group, key: (String, i32), c: Committed) {
    if g.offsets.get(&key).is_some_and(|old| old.order >= c.order) {
        debug!(group = %g.id, topic = %key.0, partition = key.1,
            "transactional offset older than the committed one; not applied");
        return;
    }
    // Commits of the partition still waiting for the ISR were written before it: once they
    // settle, readers see this one.
    if let Some(waiting) = g.in_flight.get_mut(&key) {
        waiting.visible = Some(c.clone());
        waiting.visible_seq = u64::MAX;
    }
    g.offsets.insert(key, c);
}

/// Takes back a failed transactional commit's pending offsets, unless replaced since.
fn undo(g: &mut Group, producer_id: i64, applied: Vec<Applied>) {
    let Some(held) = g.pending_txn.get_mut(&producer_id) else {
        return;
    };
    for a in applied {
        if held.get(&a.key) != Some(&a.ours) {
            continue;
        }
        match a.before {
            Some(before) => held.insert(a.key, before),
            None => held.remove(&a.key),
        };
    }
    if held.is_empty() {
        g.pending_txn.remove(&producer_id);
    }
}
