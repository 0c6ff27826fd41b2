//! Committed offsets: OffsetCommit (with Kafka's generation/member checks, and simple commits from
//! outside any group), OffsetFetch, OffsetDelete, their expiry (`offsets.retention.minutes`, or a
//! commit's own retention) and their removal with a deleted topic. Commits are acknowledged only
//! after the records are in the log.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{info, warn};

use super::coordinator::GroupCoordinator;
use super::error::GroupError;
use super::group::{Committed, Group, GroupState, InFlight};
use super::records::{OffsetValue, RecordKey};
use crate::broker::internal_topic::PendingAppend;

/// One partition of an OffsetCommit.
pub struct CommitPartition {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    /// OffsetCommit v2-v4 `retention_time_ms` when not -1: the offset expires this long after the commit.
    pub retention_ms: Option<i64>,
}

/// Per topic, per partition results (`Ok` or the partition's error).
pub type PartitionResults = Vec<(String, Vec<(i32, Result<(), GroupError>)>)>;

/// Per topic, the committed offset of each requested partition (`None`: nothing committed).
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<Committed>)>)>;

/// [`FetchedOffsets`] with an error per partition: UNSTABLE_OFFSET_COMMIT for a partition a
/// transaction holds an offset of, when the fetch requires stable offsets.
pub type StableOffsets = Vec<(String, Vec<(i32, Result<Option<Committed>, GroupError>)>)>;

impl GroupCoordinator {
    pub(super) fn topic_has_partition(&self, topic: &str, partition: i32) -> bool {
        self.image()
            .topics
            .get(topic)
            .is_some_and(|t| partition >= 0 && (partition as usize) < t.partitions.len())
    }

    /// OffsetCommit. An `Err` applies to every partition of the request. The offsets are in memory
    /// as soon as they are queued for the log (so the group's next commit supersedes them in the same
    /// order as in the log); the answer waits until they are committed, and a failed write is undone.
    pub async fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        topics: Vec<(String, Vec<CommitPartition>)>,
    ) -> Result<PartitionResults, GroupError> {
        let (results, stored) =
            self.commit_locked(group_id, generation, member_id, instance_id, topics)?;
        stored
            .await
            .unwrap_or(Err(GroupError::CoordinatorNotAvailable))?;
        Ok(results)
    }

    fn commit_locked(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        topics: Vec<(String, Vec<CommitPartition>)>,
    ) -> Result<(PartitionResults, oneshot::Receiver<Result<(), GroupError>>), GroupError> {
        // Kafka accepts the empty group id for OffsetCommit (backwards compatibility).
        let mut groups = self.lock();
        self.check_coordinator_for_write(group_id)?;
        if !groups.contains_key(group_id) {
            // Kafka accepts commits for an unknown group only from outside group management.
            if generation >= 0 {
                return Err(GroupError::IllegalGeneration);
            }
            groups.insert(group_id.to_string(), Group::new(group_id, self.now_ms()));
        }
        let g = groups
            .get_mut(group_id)
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        // Kafka's validateOffsetCommit: anything naming a generation, member or instance must be a
        // current member of the current generation; otherwise only an empty group takes commits.
        if g.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            if g.is_fenced(instance_id, member_id) {
                return Err(GroupError::FencedInstanceId);
            }
            let Some(m) = g.members.get_mut(member_id) else {
                return Err(GroupError::UnknownMemberId);
            };
            if generation != g.generation {
                return Err(GroupError::IllegalGeneration);
            }
            if g.state == GroupState::CompletingRebalance {
                return Err(GroupError::RebalanceInProgress);
            }
            m.last_heartbeat = Instant::now();
        } else if g.state != GroupState::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        let now = self.now_ms();
        let mut results: PartitionResults = Vec::with_capacity(topics.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for (topic, partitions) in topics {
            let mut out = Vec::with_capacity(partitions.len());
            for p in partitions {
                let metadata = p.metadata.unwrap_or_default();
                let result = if metadata.len() > self.config.offset_metadata_max_bytes {
                    Err(GroupError::OffsetMetadataTooLarge)
                } else if !self.topic_has_partition(&topic, p.partition) {
                    Err(GroupError::UnknownTopicOrPartition)
                } else {
                    let value = OffsetValue {
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                        metadata,
                        commit_timestamp: now,
                        expire_timestamp: p.retention_ms.map(|r| now.saturating_add(r)),
                    };
                    records.push((
                        RecordKey::Offset {
                            group: group_id.to_string(),
                            topic: topic.clone(),
                            partition: p.partition,
                        },
                        Some(value.encode()),
                    ));
                    let ours = Committed {
                        order: g.stamp(),
                        ..Committed::from(value)
                    };
                    accepted.push(((topic.clone(), p.partition), ours));
                    Ok(())
                };
                out.push((p.partition, result));
            }
            results.push((topic, out));
        }
        let pending = self.append(group_id, records, now)?;
        let seq = self.next_member_uid();
        let applied: Vec<Applied> = accepted
            .into_iter()
            .map(|(key, ours)| {
                let before = g.offsets.insert(key.clone(), ours.clone());
                let waiting = g.in_flight.entry(key.clone()).or_insert_with(|| InFlight {
                    visible: before.clone(),
                    ..InFlight::default()
                });
                waiting.commits.insert(seq);
                Applied { key, before, ours }
            })
            .collect();
        let (tx, rx) = oneshot::channel();
        let group = group_id.to_string();
        self.on_stored(pending, move |_, groups, result| {
            // The group may have been unloaded (and loaded again) meanwhile: only its own
            // commits are settled, by their sequence numbers.
            if let Some(g) = groups.get_mut(&group) {
                for a in &applied {
                    let done = g
                        .in_flight
                        .get_mut(&a.key)
                        .is_some_and(|w| w.settle(seq, &a.ours, result.is_ok()));
                    if done {
                        g.in_flight.remove(&a.key);
                    }
                }
                if result.is_err() {
                    undo(g, applied);
                }
            }
            let _ = tx.send(result);
        });
        Ok((results, rx))
    }

    /// OffsetFetch for one group; `topics: None` asks for every committed offset.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<FetchedOffsets, GroupError> {
        Ok(self
            .fetch_offsets_stable(group_id, topics, false)?
            .into_iter()
            .map(|(t, ps)| {
                (
                    t,
                    ps.into_iter().map(|(p, c)| (p, c.ok().flatten())).collect(),
                )
            })
            .collect())
    }

    /// OffsetFetch for one group. With `require_stable` (v7+), a partition some transaction holds
    /// an offset of is answered UNSTABLE_OFFSET_COMMIT (per partition, as Kafka does, also when
    /// every committed offset is asked for); without, the last committed offset as always.
    pub fn fetch_offsets_stable(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
    ) -> Result<StableOffsets, GroupError> {
        // Kafka accepts the empty group id for OffsetFetch (backwards compatibility).
        let groups = self.lock();
        self.check_coordinator(group_id)?;
        let g = groups.get(group_id);
        let lookup = |t: &str, p: i32| {
            let key = (t.to_string(), p);
            match g {
                Some(g) if require_stable && g.has_pending_txn(&key) => {
                    Err(GroupError::UnstableOffsetCommit)
                }
                Some(g) => Ok(g.committed(&key)),
                None => Ok(None),
            }
        };
        Ok(match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(t, ps)| {
                    let found = ps.into_iter().map(|p| (p, lookup(&t, p))).collect();
                    (t, found)
                })
                .collect(),
            None => {
                let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
                if let Some(g) = g {
                    for (t, p) in g.offsets.keys() {
                        if g.committed(&(t.clone(), *p)).is_some() {
                            by_topic.entry(t.clone()).or_default().push(*p);
                        }
                    }
                }
                by_topic
                    .into_iter()
                    .map(|(t, mut ps)| {
                        ps.sort();
                        let found = ps.into_iter().map(|p| (p, lookup(&t, p))).collect();
                        (t, found)
                    })
                    .collect()
            }
        })
    }

    /// OffsetDelete: removes committed offsets of topics the group is not subscribed to (at once in
    /// memory; answered once the tombstones are committed, and undone if they cannot be).
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> Result<PartitionResults, GroupError> {
        let (results, stored) = self.delete_offsets_locked(group_id, topics)?;
        stored
            .await
            .unwrap_or(Err(GroupError::CoordinatorNotAvailable))?;
        Ok(results)
    }

    fn delete_offsets_locked(
        &self,
        group_id: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> Result<(PartitionResults, oneshot::Receiver<Result<(), GroupError>>), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let mut groups = self.lock();
        self.check_coordinator_for_write(group_id)?;
        let g = groups
            .get_mut(group_id)
            .ok_or(GroupError::GroupIdNotFound)?;
        if g.state == GroupState::Dead {
            return Err(GroupError::GroupIdNotFound);
        }
        let subscribed = if g.state == GroupState::Empty {
            Default::default()
        } else if g.protocol_type.as_deref() == Some("consumer") {
            g.subscribed_topics().unwrap_or_default()
        } else {
            // Kafka refuses OffsetDelete on non-empty groups that do not use the consumer protocol.
            return Err(GroupError::NonEmptyGroup);
        };
        let mut results: PartitionResults = Vec::new();
        let mut tombstones = Vec::new();
        for (topic, partitions) in topics {
            let mut out = Vec::new();
            for p in partitions {
                if subscribed.contains(&topic) {
                    out.push((p, Err(GroupError::GroupSubscribedToTopic)));
                } else {
                    let key = (topic.clone(), p);
                    // A pending transactional offset gets its tombstone too (Kafka).
                    if g.offsets.contains_key(&key) || g.has_pending_txn(&key) {
                        tombstones.push((
                            RecordKey::Offset {
                                group: group_id.to_string(),
                                topic: topic.clone(),
                                partition: p,
                            },
                            None,
                        ));
                    }
                    out.push((p, Ok(())));
                }
            }
            results.push((topic, out));
        }
        let keys: Vec<(String, i32)> = tombstones
            .iter()
            .filter_map(|(k, _)| match k {
                RecordKey::Offset {
                    topic, partition, ..
                } => Some((topic.clone(), *partition)),
                RecordKey::Group { .. } => None,
            })
            .collect();
        let pending = self.append(group_id, tombstones, self.now_ms())?;
        // Pending transactional offsets of these partitions go too, and stay gone should the
        // tombstones fail: put back, one whose marker came meanwhile would be pending for good
        // (the log still has them, and the next load brings them back).
        for k in &keys {
            g.drop_pending_txn(k);
        }
        let removed: Vec<((String, i32), Committed)> = keys
            .into_iter()
            .filter_map(|k| g.offsets.remove(&k).map(|c| (k, c)))
            .collect();
        let (tx, rx) = oneshot::channel();
        let group = group_id.to_string();
        self.on_stored(pending, move |_, groups, result| {
            if result.is_err() {
                if let Some(g) = groups.get_mut(&group) {
                    for (k, c) in removed {
                        g.offsets.entry(k).or_insert(c);
                    }
                }
            }
            let _ = tx.send(result);
        });
        Ok((results, rx))
    }

    /// Expires committed offsets as Kafka's coordinator does (`offsetExpirationCondition`), then drops
    /// Empty groups left with nothing. Which offsets may expire, and from when:
    /// - an Empty group with a protocol: all of them, `offsets.retention.minutes` after it became Empty;
    /// - a Stable `consumer` group: those of topics no member subscribes to, after their last commit;
    /// - a group used only for commits (no protocol): each one, after its last commit.
    ///
    /// An offset committed with an explicit retention (OffsetCommit v2-v4) expires at that time instead.
    pub async fn expire_offsets(&self, now: i64) {
        let retention = self.config.offsets_retention_ms;
        let subscribed: HashMap<String, HashSet<String>> = self
            .lock()
            .values()
            .filter(|g| g.state == GroupState::Stable)
            .filter_map(|g| g.subscribed_topics().map(|t| (g.id.clone(), t)))
            .collect();
        self.remove_offsets(now, "expired committed offsets", false, |g, key, c| {
            // As Kafka: not while a transaction holds an offset of the partition.
            if g.has_pending_txn(key) {
                return false;
            }
            let topic = &key.0;
            let base = match (&g.protocol_type, g.state) {
                (Some(_), GroupState::Empty) => g.state_since_ms,
                (Some(_), GroupState::Stable) => match subscribed.get(&g.id) {
                    Some(topics) if !topics.contains(topic) => c.commit_timestamp,
                    _ => return false,
                },
                (Some(_), _) => return false,
                (None, _) => c.commit_timestamp,
            };
            match c.expire_timestamp {
                Some(at) => now >= at,
                None => base.saturating_add(retention) <= now,
            }
        })
        .await;
    }

    /// A deleted topic takes its committed offsets with it, in every group (Kafka's
    /// `onPartitionsDeleted`).
    pub async fn on_topic_deleted(&self, topic: &str) {
        self.remove_offsets(
            self.now_ms(),
            "removed offsets of a deleted topic",
            true,
            |_, (t, _), _| t == topic,
        )
        .await;
    }

    /// Writes tombstones for the committed offsets `doomed` picks and forgets them; an Empty group left
    /// without offsets is retired with a tombstone of its own, as Kafka's `cleanupGroupMetadata` does.
    /// They are forgotten at once; this returns once the tombstones are committed. Should they not
    /// make it, the offsets come back at the next load and are removed again.
    /// With `pending_too`, the pending transactional offsets `doomed` picks go as well (with a
    /// tombstone, as Kafka's `onPartitionsDeleted`).
    async fn remove_offsets(
        &self,
        now: i64,
        what: &str,
        pending_too: bool,
        doomed: impl Fn(&Group, &(String, i32), &Committed) -> bool,
    ) {
        let mut stored = Vec::new();
        {
            let mut groups = self.lock();
            self.remove_offsets_locked(&mut groups, now, what, pending_too, doomed, &mut stored);
        }
        for (group, pending) in stored {
            if let Err(e) = pending.wait().await {
                warn!(group = %group, error = %e, "cannot remove committed offsets");
            }
        }
    }

    fn remove_offsets_locked(
        &self,
        groups: &mut HashMap<String, Group>,
        now: i64,
        what: &str,
        pending_too: bool,
        doomed: impl Fn(&Group, &(String, i32), &Committed) -> bool,
        stored: &mut Vec<(String, PendingAppend)>,
    ) {
        let mut dead = Vec::new();
        for g in groups.values_mut() {
            let mut gone: Vec<(String, i32)> = g
                .offsets
                .iter()
                .filter(|(k, c)| doomed(g, k, c))
                .map(|(k, _)| k.clone())
                .collect();
            let gone_committed = gone.len();
            if pending_too {
                let mut pending: Vec<(String, i32)> = g
                    .pending_txn
                    .values()
                    .flat_map(|held| held.iter())
                    .filter(|(k, c)| !g.offsets.contains_key(*k) && doomed(g, k, c))
                    .map(|(k, _)| k.clone())
                    .collect();
                pending.sort();
                pending.dedup();
                gone.extend(pending);
            }
            // As in Kafka, an Empty group without offsets is retired by any cleanup, not only by the
            // one that removes its last offsets; not while a transaction holds offsets of it.
            let retire = g.state == GroupState::Empty
                && g.offsets.len() == gone_committed
                && g.pending_txn.is_empty();
            if gone.is_empty() && !retire {
                continue;
            }
            let mut records: Vec<(RecordKey, Option<Bytes>)> = gone
                .iter()
                .map(|(t, p)| {
                    let key = RecordKey::Offset {
                        group: g.id.clone(),
                        topic: t.clone(),
                        partition: *p,
                    };
                    (key, None)
                })
                .collect();
            if retire {
                records.push((
                    RecordKey::Group {
                        group: g.id.clone(),
                    },
                    None,
                ));
            }
            match self.append(&g.id, records, now) {
                Ok(pending) => {
                    stored.push((g.id.clone(), pending));
                    for k in &gone {
                        g.offsets.remove(k);
                        if pending_too {
                            g.drop_pending_txn(k);
                        }
                    }
                    if !gone.is_empty() {
                        info!(group = %g.id, offsets = gone.len(), "{what}");
                    }
                    if retire {
                        g.transition(GroupState::Dead, now);
                        dead.push(g.id.clone());
                    }
                }
                Err(e) => warn!(group = %g.id, error = %e, "cannot remove committed offsets"),
            }
        }
        for id in dead {
            groups.remove(&id);
        }
    }
}

/// One committed offset a commit put in memory, and what it replaced.
struct Applied {
    key: (String, i32),
    before: Option<Committed>,
    ours: Committed,
}

/// Takes back a failed commit's offsets, unless a later commit has replaced them since.
fn undo(g: &mut Group, applied: Vec<Applied>) {
    for a in applied {
        if g.offsets.get(&a.key) != Some(&a.ours) {
            continue;
        }
        match a.before {
            Some(before) => g.offsets.insert(a.key, before),
            None => g.offsets.remove(&a.key),
        };
    }
}
