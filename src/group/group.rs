//! One classic consumer group: its state (Empty → PreparingRebalance → CompletingRebalance → Stable,
//! and Dead), members, static-member map, selected protocol and committed offsets. The transitions
//! that need timers or the log live in `coordinator.rs`; this file holds the data and pure rules.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use indexmap::IndexMap;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::error::GroupError;
use super::records::{GroupValue, MemberValue, OffsetValue};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The names Kafka reports in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup answers (the handler shapes it per version).
#[derive(Clone, Debug, Default)]
pub struct JoinOutcome {
    pub error: Option<GroupError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub skip_assignment: bool,
    /// (member id, group instance id, metadata): only for the leader.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    pub fn failed(error: GroupError, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error: Some(error),
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// What a SyncGroup answers.
#[derive(Clone, Debug, Default)]
pub struct SyncOutcome {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn failed(error: GroupError) -> SyncOutcome {
        SyncOutcome {
            error: Some(error),
            ..Default::default()
        }
    }
}

pub struct Member {
    pub id: String,
    /// Distinguishes incarnations of the same member id for its expiry task.
    pub uid: u64,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    pub sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    pub last_heartbeat: Instant,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    pub fn answer_join(&mut self, outcome: JoinOutcome) {
        if let Some(tx) = self.join_waiter.take() {
            let _ = tx.send(outcome);
        }
    }

    pub fn answer_sync(&mut self, outcome: SyncOutcome) {
        if let Some(tx) = self.sync_waiter.take() {
            let _ = tx.send(outcome);
        }
    }
}

/// A partition's commits waiting for the ISR, and the offset readers see meanwhile.
#[derive(Debug, Default)]
pub struct InFlight {
    /// The waiting commits, by their coordinator-wide sequence number.
    pub commits: HashSet<u64>,
    /// The offset before the first of them, or the latest of them committed since.
    pub visible: Option<Committed>,
    /// The sequence number of the commit `visible` comes from (0: from before them).
    pub visible_seq: u64,
}

impl InFlight {
    /// Notes that commit `seq`, which wrote `ours`, is over; true when none waits any more.
    pub fn settle(&mut self, seq: u64, ours: &Committed, committed: bool) -> bool {
        self.commits.remove(&seq);
        // Completions may be handled out of order: the latest committed commit wins.
        if committed && seq > self.visible_seq {
            self.visible = Some(ours.clone());
            self.visible_seq = seq;
        }
        self.commits.is_empty()
    }
}

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// When the offset expires regardless of `offsets.retention.minutes` (OffsetCommit v2-v4).
    pub expire_timestamp: Option<i64>,
    /// Where its record stands among the group's writes: the record's log offset when loaded, a
    /// later number (`Group::next_order`) for writes since. A committed transaction's offset
    /// replaces a committed offset only if written after it (Kafka's `recordOffset` rule).
    pub order: i64,
}

impl From<OffsetValue> for Committed {
    fn from(v: OffsetValue) -> Self {
        Committed {
            offset: v.offset,
            leader_epoch: v.leader_epoch,
            metadata: v.metadata,
            commit_timestamp: v.commit_timestamp,
            expire_timestamp: v.expire_timestamp,
            order: 0,
        }
    }
}

/// Per producer id, the transactional offsets (TxnOffsetCommit) it wrote for a group that wait
/// for its transaction's marker (Kafka's `pendingTransactionalOffsets`).
pub type PendingTxnOffsets = HashMap<i64, HashMap<(String, i32), Committed>>;

/// The delayed first rebalance of an empty group (`group.initial.rebalance.delay.ms`).
pub struct InitialDelay {
    /// How much more the delay may still be extended (bounded by the rebalance timeout).
    pub remaining_ms: u64,
    pub new_member_joined: bool,
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    /// When the group entered its current state (ms since the epoch).
    pub state_since_ms: i64,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: IndexMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED that have not joined yet (KIP-394).
    pub pending: HashSet<String>,
    /// group.instance.id → member id (KIP-345).
    pub static_members: HashMap<String, String>,
    /// The latest offset per partition, committed or on its way (commits apply here in the order
    /// they took effect; a failed one is undone).
    pub offsets: HashMap<(String, i32), Committed>,
    /// The partitions of `offsets` whose latest commits are appended but not yet committed by the
    /// ISR: OffsetFetch answers what is committed (Kafka's pending offset commits).
    pub in_flight: HashMap<(String, i32), InFlight>,
    /// Renewed (from the coordinator-wide counter, so never reused, not even by a group unloaded and
    /// loaded again) whenever a join timer is (re)scheduled or the join completes; stale timers do nothing.
    pub join_epoch: u64,
    pub initial_delay: Option<InitialDelay>,
    /// Transactional offsets waiting for their producer's commit or abort marker.
    pub pending_txn: PendingTxnOffsets,
    /// The `Committed::order` of the group's next write.
    pub next_order: i64,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_since_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: IndexMap::new(),
            pending: HashSet::new(),
            static_members: HashMap::new(),
            offsets: HashMap::new(),
            in_flight: HashMap::new(),
            join_epoch: 0,
            initial_delay: None,
            pending_txn: HashMap::new(),
            next_order: 0,
        }
    }

    /// The order of a write queued now (see [`Committed::order`]).
    pub fn stamp(&mut self) -> i64 {
        let order = self.next_order;
        self.next_order += 1;
        order
    }

    /// Whether some producer's transaction holds an offset of `key` for this group.
    pub fn has_pending_txn(&self, key: &(String, i32)) -> bool {
        self.pending_txn.values().any(|p| p.contains_key(key))
    }

    /// A tombstone for `key` also removes every producer's pending offset of it (as Kafka's replay
    /// of an offset tombstone does); producers left without any are forgotten.
    pub fn drop_pending_txn(&mut self, key: &(String, i32)) {
        for p in self.pending_txn.values_mut() {
            p.remove(key);
        }
        self.pending_txn.retain(|_, p| !p.is_empty());
    }

    pub fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_since_ms = now_ms;
    }

    /// The offset of `key` as the ISR has it: without the commits still waiting for it.
    pub fn committed(&self, key: &(String, i32)) -> Option<Committed> {
        match self.in_flight.get(key) {
            Some(waiting) => waiting.visible.clone(),
            None => self.offsets.get(key).cloned(),
        }
    }

    pub fn size(&self) -> usize {
        self.members.len() + self.pending.len()
    }

    pub fn is_leader(&self, member: &str) -> bool {
        self.leader.as_deref() == Some(member)
    }

    /// KIP-345: the instance id is registered to a different member id.
    pub fn is_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|m| m != member_id)
    }

    /// Protocols every current member supports, in no particular order.
    fn candidate_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return Vec::new();
        };
        let mut candidates: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in members {
            candidates.retain(|c| m.protocols.iter().any(|(n, _)| n == c));
        }
        candidates
    }

    /// Whether a member with these protocols may join (Kafka's `supportsProtocols`).
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self
                .candidate_protocols()
                .iter()
                .any(|c| protocols.iter().any(|(n, _)| n == c))
    }

    /// Kafka's `selectProtocol`: each member votes for its most preferred candidate; most votes wins
    /// (ties: the candidate first in the first member's preference order).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: IndexMap<&str, usize> = IndexMap::new();
        if let Some(first) = self.members.values().next() {
            for (n, _) in &first.protocols {
                if candidates.contains(n) {
                    votes.insert(n, 0);
                }
            }
        }
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(n).or_insert(0) += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .iter()
            .find(|(_, v)| **v == best)
            .map(|(n, _)| n.to_string())
    }

    pub fn all_members_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    pub fn max_rebalance_timeout_ms(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0)
    }

    /// The JoinGroup answer for `member` in the current generation.
    pub fn join_outcome_for(&self, member: &str, skip_assignment: bool) -> JoinOutcome {
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if self.is_leader(member) {
            self.members
                .values()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.metadata_for(&protocol),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinOutcome {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member.to_string(),
            skip_assignment,
            members,
        }
    }

    /// Topics the members subscribe to, when they speak the consumer protocol and we can read it.
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            let mut meta = m.metadata_for(protocol);
            if meta.len() < 2 {
                return None;
            }
            let version = i16::from_be_bytes([meta[0], meta[1]]);
            let _ = bytes::Buf::get_i16(&mut meta);
            let sub = ConsumerProtocolSubscription::decode(&mut meta, version.clamp(0, 3)).ok()?;
            topics.extend(sub.topics.iter().map(|t| t.to_string()));
        }
        Some(topics)
    }

    /// The GroupMetadataValue for this group as it is now.
    pub fn to_value(&self) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_since_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: i64) -> Committed {
        Committed {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
            expire_timestamp: None,
            order: 0,
        }
    }

    #[test]
    fn readers_see_only_committed_offsets_whatever_order_commits_settle_in() {
        let key = ("t".to_string(), 0);
        let mut g = Group::new("g", 0);
        g.offsets.insert(key.clone(), at(5));
        // Commits 2 (offset 6) and 3 (offset 7) wait for the ISR: readers see 5.
        g.offsets.insert(key.clone(), at(7));
        g.in_flight.insert(
            key.clone(),
            InFlight {
                commits: HashSet::from([2, 3]),
                visible: Some(at(5)),
                visible_seq: 0,
            },
        );
        assert_eq!(g.committed(&key), Some(at(5)));
        // The later one is handled first, then the earlier: 7 stays.
        let w = g.in_flight.get_mut(&key).unwrap();
        assert!(!w.settle(3, &at(7), true));
        assert_eq!(g.committed(&key), Some(at(7)));
        let w = g.in_flight.get_mut(&key).unwrap();
        assert!(w.settle(2, &at(6), true));
        assert_eq!(w.visible, Some(at(7)));
        // A failed commit does not become visible.
        let mut w = InFlight {
            commits: HashSet::from([4]),
            visible: Some(at(7)),
            visible_seq: 3,
        };
        assert!(w.settle(4, &at(8), false));
        assert_eq!(w.visible, Some(at(7)));
    }
}
