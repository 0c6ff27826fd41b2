//! Consumer groups over the wire against the real binary: every version of every group API, the
//! KIP-394 handshake, assignments through SyncGroup, Kafka's error codes, static membership
//! (KIP-345), and committed offsets surviving SIGKILL. The timer-driven cases (session expiry,
//! rebalance timeout, initial delay) run in-process on paused time in `group_timers.rs`.

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::{commit, fetch_offset, topic_id, BrokerProcess, Client};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

const MEMBER_ID_REQUIRED: i16 = 79;
const UNKNOWN_MEMBER_ID: i16 = 25;
const ILLEGAL_GENERATION: i16 = 22;
const REBALANCE_IN_PROGRESS: i16 = 27;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const GROUP_MAX_SIZE_REACHED: i16 = 81;
const FENCED_INSTANCE_ID: i16 = 82;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const INVALID_GROUP_ID: i16 = 24;
const UNKNOWN_TOPIC_ID: i16 = 100;
const UNKNOWN_SERVER_ERROR: i16 = -1;
const INVALID_COMMIT_OFFSET_SIZE: i16 = 28;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Starts a broker with fast group settings (no initial delay, short sessions allowed).
fn start(dir: &Path) -> BrokerProcess {
    start_with_delay(dir, 0)
}

fn start_with_delay(dir: &Path, initial_delay_ms: u64) -> BrokerProcess {
    let cfg = dir.join("groups.toml");
    std::fs::write(
        &cfg,
        format!(
            "group_initial_rebalance_delay_ms = {initial_delay_ms}\n\
             group_min_session_timeout_ms = 100\n\
             group_max_size = 3\n\
             offsets_topic_num_partitions = 3\n"
        ),
    )
    .unwrap();
    let data = dir.join("data");
    BrokerProcess::start(&data, &["--config", cfg.to_str().unwrap()])
}

fn create_topic(c: &mut Client, topic: &str, partitions: i32) {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(topic)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(5000);
    let Some(ResponseKind::CreateTopics(r)) = c.request(ApiKey::CreateTopics, 7, req) else {
        panic!("CreateTopics")
    };
    assert_eq!(r.topics[0].error_code, 0);
}

struct Join<'a> {
    group: &'a str,
    member: &'a str,
    instance: Option<&'a str>,
    protocols: &'a [&'a str],
    session_ms: i32,
    rebalance_ms: i32,
}

impl<'a> Join<'a> {
    fn new(group: &'a str) -> Self {
        Join {
            group,
            member: "",
            instance: None,
            protocols: &["range"],
            session_ms: 10_000,
            rebalance_ms: 10_000,
        }
    }
    fn member(mut self, m: &'a str) -> Self {
        self.member = m;
        self
    }
    fn instance(mut self, i: &'a str) -> Self {
        self.instance = Some(i);
        self
    }
    fn protocols(mut self, p: &'a [&'a str]) -> Self {
        self.protocols = p;
        self
    }
    fn send(&self, c: &mut Client, v: i16) -> JoinGroupResponse {
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(s(self.group)))
            .with_session_timeout_ms(self.session_ms)
            .with_rebalance_timeout_ms(if v >= 1 { self.rebalance_ms } else { -1 })
            .with_member_id(s(self.member))
            .with_group_instance_id(self.instance.map(s))
            .with_protocol_type(s("consumer"))
            .with_protocols(
                self.protocols
                    .iter()
                    .map(|p| {
                        JoinGroupRequestProtocol::default()
                            .with_name(s(p))
                            .with_metadata(Bytes::from(format!("meta-{p}-{}", self.member)))
                    })
                    .collect(),
            );
        match c.request(ApiKey::JoinGroup, v, req) {
            Some(ResponseKind::JoinGroup(r)) => r,
            other => panic!("JoinGroup v{v}: {other:?}"),
        }
    }
    /// The KIP-394 handshake at v4+: the first join returns MEMBER_ID_REQUIRED and the id to use.
    fn handshake(mut self, c: &mut Client, v: i16) -> (JoinGroupResponse, String) {
        let mut id = self.member.to_string();
        if v >= 4 && self.instance.is_none() && self.member.is_empty() {
            let r = self.send(c, v);
            assert_eq!(r.error_code, MEMBER_ID_REQUIRED, "v{v}");
            assert!(!r.member_id.is_empty());
            id = r.member_id.to_string();
        }
        let leaked: &'a str = Box::leak(id.into_boxed_str());
        self.member = leaked;
        let r = self.send(c, v);
        let id = r.member_id.to_string();
        (r, id)
    }
}

fn sync(
    c: &mut Client,
    v: i16,
    group: &str,
    generation: i32,
    member: &str,
    assignments: &[(&str, &str)],
) -> SyncGroupResponse {
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_protocol_type(if v >= 5 { Some(s("consumer")) } else { None })
        .with_protocol_name(if v >= 5 { Some(s("range")) } else { None })
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::from(a.to_string()))
                })
                .collect(),
        );
    match c.request(ApiKey::SyncGroup, v, req) {
        Some(ResponseKind::SyncGroup(r)) => r,
        other => panic!("SyncGroup v{v}: {other:?}"),
    }
}

fn heartbeat(
    c: &mut Client,
    v: i16,
    group: &str,
    generation: i32,
    member: &str,
    instance: Option<&str>,
) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_group_instance_id(if v >= 3 { instance.map(s) } else { None });
    match c.request(ApiKey::Heartbeat, v, req) {
        Some(ResponseKind::Heartbeat(r)) => r.error_code,
        other => panic!("Heartbeat v{v}: {other:?}"),
    }
}

fn leave(c: &mut Client, v: i16, group: &str, member: &str, instance: Option<&str>) -> i16 {
    let req = if v >= 3 {
        LeaveGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_members(vec![MemberIdentity::default()
                .with_member_id(s(member))
                .with_group_instance_id(instance.map(s))])
    } else {
        LeaveGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s(member))
    };
    match c.request(ApiKey::LeaveGroup, v, req) {
        Some(ResponseKind::LeaveGroup(r)) if v >= 3 => r.error_code.max(r.members[0].error_code),
        Some(ResponseKind::LeaveGroup(r)) => r.error_code,
        other => panic!("LeaveGroup v{v}: {other:?}"),
    }
}

fn describe(c: &mut Client, v: i16, group: &str) -> describe_groups_response::DescribedGroup {
    let req = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(s(group))])
        .with_include_authorized_operations(v >= 3);
    match c.request(ApiKey::DescribeGroups, v, req) {
        Some(ResponseKind::DescribeGroups(mut r)) => r.groups.remove(0),
        other => panic!("DescribeGroups v{v}: {other:?}"),
    }
}

fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let api = vltava::handlers::lookup(key as i16).unwrap();
    api.min_version..=api.max_version
}

#[test]
fn every_group_api_version_answers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut c = broker.connect();
    create_topic(&mut c, "t", 2);

    for v in versions(ApiKey::FindCoordinator) {
        let req = if v >= 4 {
            FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![s("g1"), s("g2")])
        } else {
            FindCoordinatorRequest::default().with_key(s("g1"))
        };
        let Some(ResponseKind::FindCoordinator(r)) = c.request(ApiKey::FindCoordinator, v, req)
        else {
            panic!("FindCoordinator v{v}")
        };
        let port: i32 = broker.addr.rsplit(':').next().unwrap().parse().unwrap();
        if v >= 4 {
            assert_eq!(r.coordinators.len(), 2);
            for co in &r.coordinators {
                assert_eq!((co.error_code, co.node_id.0, co.port), (0, 1, port), "v{v}");
            }
            let txn = FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![s("tx")]);
            let Some(ResponseKind::FindCoordinator(r)) = c.request(ApiKey::FindCoordinator, v, txn)
            else {
                panic!()
            };
            // A transactional id's coordinator is this broker too (__transaction_state is
            // created by the first such lookup).
            let co = &r.coordinators[0];
            assert_eq!((co.error_code, co.node_id.0, co.port), (0, 1, port), "v{v}");
        } else {
            assert_eq!((r.error_code, r.node_id.0, r.port), (0, 1, port), "v{v}");
        }
    }

    // One group per JoinGroup version: join, sync, heartbeat, commit, fetch, describe, leave.
    let sync_versions = versions(ApiKey::SyncGroup);
    let hb_versions = versions(ApiKey::Heartbeat);
    let leave_versions = versions(ApiKey::LeaveGroup);
    let describe_versions = versions(ApiKey::DescribeGroups);
    for v in versions(ApiKey::JoinGroup) {
        let group = format!("jg-v{v}");
        let (r, id) = Join::new(&group).handshake(&mut c, v);
        assert_eq!(r.error_code, 0, "JoinGroup v{v}");
        assert_eq!(r.generation_id, 1, "v{v}");
        assert_eq!(r.leader.as_str(), id, "sole member leads at v{v}");
        assert_eq!(r.members.len(), 1);
        assert_eq!(r.protocol_name.as_ref().unwrap().as_str(), "range");
        let sv = (*sync_versions.end()).min(v.max(*sync_versions.start()));
        let sr = sync(&mut c, sv, &group, 1, &id, &[(&id, "assigned")]);
        assert_eq!(sr.error_code, 0, "SyncGroup v{sv}");
        assert_eq!(&sr.assignment[..], b"assigned");
        for hv in hb_versions.clone() {
            assert_eq!(
                heartbeat(&mut c, hv, &group, 1, &id, None),
                0,
                "Heartbeat v{hv}"
            );
        }
        let dv = (*describe_versions.end()).min(v);
        let d = describe(&mut c, dv, &group);
        assert_eq!(d.group_state.as_str(), "Stable", "DescribeGroups v{dv}");
        assert_eq!(d.protocol_data.as_str(), "range");
        assert_eq!(&d.members[0].member_assignment[..], b"assigned");
        assert_eq!(d.members[0].member_id.as_str(), id);
        // Asked for from v3: every operation a group supports (READ, DELETE, DESCRIBE,
        // DESCRIBE_CONFIGS, ALTER_CONFIGS), as Kafka reports them without an authorizer.
        let ops = if dv >= 3 { 0b1101_0100_1000 } else { i32::MIN };
        assert_eq!(d.authorized_operations, ops, "DescribeGroups v{dv}");
        let lv = (*leave_versions.end()).min(v);
        assert_eq!(leave(&mut c, lv, &group, &id, None), 0, "LeaveGroup v{lv}");
        assert_eq!(describe(&mut c, dv, &group).group_state.as_str(), "Empty");
    }
    for v in sync_versions {
        let group = format!("sg-v{v}");
        let (r, id) = Join::new(&group).handshake(&mut c, 9);
        let sr = sync(&mut c, v, &group, r.generation_id, &id, &[(&id, "a")]);
        assert_eq!(
            (sr.error_code, &sr.assignment[..]),
            (0, &b"a"[..]),
            "SyncGroup v{v}"
        );
        if v >= 5 {
            assert_eq!(sr.protocol_name.unwrap().as_str(), "range");
        }
    }

    for v in versions(ApiKey::OffsetCommit) {
        let group = format!("oc-v{v}");
        assert_eq!(
            commit(&mut c, v, (&group, -1, ""), ("t", 1), 40 + v as i64, "m"),
            0,
            "simple OffsetCommit v{v}"
        );
        assert_eq!(
            commit(&mut c, v, (&group, -1, ""), ("nope", 0), 1, ""),
            if v >= 10 { UNKNOWN_TOPIC_ID } else { 3 },
            "unknown topic at v{v}"
        );
        for fv in versions(ApiKey::OffsetFetch) {
            assert_eq!(
                fetch_offset(&mut c, fv, &group, "t", 1),
                (40 + v as i64, "m".to_string(), 0),
                "OffsetFetch v{fv} after OffsetCommit v{v}"
            );
            assert_eq!(fetch_offset(&mut c, fv, &group, "t", 0).0, -1);
        }
    }
    // A commit from inside a group checks generation and member.
    let (r, id) = Join::new("member-commit").handshake(&mut c, 9);
    sync(&mut c, 5, "member-commit", r.generation_id, &id, &[]);
    assert_eq!(
        commit(&mut c, 9, ("member-commit", 1, &id), ("t", 0), 5, ""),
        0
    );
    assert_eq!(
        commit(&mut c, 9, ("member-commit", 2, &id), ("t", 0), 5, ""),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        commit(&mut c, 9, ("member-commit", 1, "who"), ("t", 0), 5, ""),
        UNKNOWN_MEMBER_ID
    );

    for v in versions(ApiKey::ListGroups) {
        let req = ListGroupsRequest::default()
            .with_states_filter(if v >= 4 { vec![s("stable")] } else { vec![] })
            .with_types_filter(if v >= 5 { vec![s("classic")] } else { vec![] });
        let Some(ResponseKind::ListGroups(r)) = c.request(ApiKey::ListGroups, v, req) else {
            panic!("ListGroups v{v}")
        };
        assert_eq!(r.error_code, 0);
        let names: Vec<&str> = r.groups.iter().map(|g| g.group_id.0.as_str()).collect();
        assert!(names.contains(&"member-commit"), "v{v}: {names:?}");
        if v >= 4 {
            // Only Stable groups pass the filter: the sg-v* groups and member-commit.
            assert!(!names.contains(&"jg-v0"), "v{v}: {names:?}");
            assert!(r.groups.iter().all(|g| g.group_state.as_str() == "Stable"));
        } else {
            assert!(names.contains(&"jg-v0") && names.contains(&"oc-v2"), "v{v}");
        }
    }

    let od = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s("oc-v2")))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(1)
            ])]);
    for v in versions(ApiKey::OffsetDelete) {
        let Some(ResponseKind::OffsetDelete(r)) = c.request(ApiKey::OffsetDelete, v, od.clone())
        else {
            panic!("OffsetDelete v{v}")
        };
        assert_eq!(r.error_code, 0);
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
        assert_eq!(fetch_offset(&mut c, 9, "oc-v2", "t", 1).0, -1);
    }

    for v in versions(ApiKey::DeleteGroups) {
        let group = format!("oc-v{}", 3 + v);
        let req = DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(s(&group)), GroupId(s("member-commit"))]);
        let Some(ResponseKind::DeleteGroups(r)) = c.request(ApiKey::DeleteGroups, v, req.clone())
        else {
            panic!("DeleteGroups v{v}")
        };
        assert_eq!(r.results[0].error_code, 0, "DeleteGroups v{v}");
        assert_eq!(r.results[1].error_code, NON_EMPTY_GROUP);
        assert_eq!(fetch_offset(&mut c, 9, &group, "t", 1).0, -1);
        let Some(ResponseKind::DeleteGroups(r)) = c.request(ApiKey::DeleteGroups, v, req) else {
            panic!()
        };
        assert_eq!(r.results[0].error_code, GROUP_ID_NOT_FOUND);
    }
}

#[test]
fn two_members_get_the_leaders_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut a = broker.connect();
    let (r, a_id) = Join::new("pair").handshake(&mut a, 9);
    assert_eq!(r.generation_id, 1);
    sync(&mut a, 5, "pair", 1, &a_id, &[(&a_id, "all")]);

    // B joins: the group rebalances; A learns of it by heartbeat and rejoins.
    let mut b = broker.connect();
    let addr = broker.addr.clone();
    let b_join = std::thread::spawn(move || {
        let mut b2 = Client::connect(&addr);
        let (r, id) = Join::new("pair").handshake(&mut b2, 9);
        (r, id, b2)
    });
    let mut code = 0;
    while code != REBALANCE_IN_PROGRESS {
        code = heartbeat(&mut a, 4, "pair", 1, &a_id, None);
        assert!(code == 0 || code == REBALANCE_IN_PROGRESS, "{code}");
        std::thread::yield_now();
    }
    let ra = Join::new("pair").member(&a_id).send(&mut a, 9);
    let (rb, b_id, mut b2) = b_join.join().unwrap();
    assert_eq!((ra.error_code, rb.error_code), (0, 0));
    assert_eq!(ra.generation_id, 2);
    assert_eq!(rb.generation_id, 2);
    assert_eq!(ra.leader.as_str(), a_id, "the first member stays leader");
    assert_eq!(
        ra.members.len(),
        2,
        "the leader gets every member's metadata"
    );
    assert!(rb.members.is_empty(), "followers get no member list");

    // The follower's SyncGroup waits for the leader's.
    let b_sync = std::thread::spawn(move || sync(&mut b2, 5, "pair", 2, &b_id, &[]));
    let sa = sync(
        &mut a,
        5,
        "pair",
        2,
        &a_id,
        &[(&a_id, "p0"), (rb.member_id.as_str(), "p1")],
    );
    let sb = b_sync.join().unwrap();
    assert_eq!((sa.error_code, &sa.assignment[..]), (0, &b"p0"[..]));
    assert_eq!((sb.error_code, &sb.assignment[..]), (0, &b"p1"[..]));
    assert_eq!(describe(&mut b, 5, "pair").members.len(), 2);
}

#[test]
fn group_errors_match_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut c = broker.connect();

    // Group management needs a group id (offset APIs accept "", as Kafka does for old clients).
    assert_eq!(Join::new("").send(&mut c, 9).error_code, INVALID_GROUP_ID);
    assert_eq!(heartbeat(&mut c, 4, "", 1, "m", None), INVALID_GROUP_ID);
    assert_eq!(fetch_offset(&mut c, 9, "", "t", 0), (-1, String::new(), 0));

    // SyncGroup and Heartbeat before any JoinGroup.
    assert_eq!(
        sync(&mut c, 5, "g", 1, "ghost", &[]).error_code,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        heartbeat(&mut c, 4, "g", 1, "ghost", None),
        UNKNOWN_MEMBER_ID
    );
    // A made-up member id for an unknown group.
    assert_eq!(
        Join::new("g").member("ghost").send(&mut c, 9).error_code,
        UNKNOWN_MEMBER_ID
    );

    let (r, id) = Join::new("g")
        .protocols(&["range", "roundrobin"])
        .handshake(&mut c, 9);
    assert_eq!(r.error_code, 0);
    assert_eq!(
        sync(&mut c, 5, "g", 7, &id, &[]).error_code,
        ILLEGAL_GENERATION
    );
    assert_eq!(sync(&mut c, 5, "g", 1, &id, &[(&id, "x")]).error_code, 0);
    assert_eq!(heartbeat(&mut c, 4, "g", 9, &id, None), ILLEGAL_GENERATION);
    assert_eq!(
        heartbeat(&mut c, 4, "g", 1, "other", None),
        UNKNOWN_MEMBER_ID
    );

    // A member whose protocols share nothing with the group's.
    let mut other = broker.connect();
    let r = Join::new("g").protocols(&["sticky"]).send(&mut other, 3);
    assert_eq!(r.error_code, INCONSISTENT_GROUP_PROTOCOL);

    // Heartbeat during a rebalance: a second member joining moves the group to PreparingRebalance.
    let addr = broker.addr.clone();
    let joiner = std::thread::spawn(move || {
        let mut c2 = Client::connect(&addr);
        Join::new("g")
            .protocols(&["roundrobin"])
            .handshake(&mut c2, 9)
            .0
    });
    let mut code = 0;
    while code == 0 {
        code = heartbeat(&mut c, 4, "g", 1, &id, None);
        std::thread::yield_now();
    }
    assert_eq!(code, REBALANCE_IN_PROGRESS);
    assert_eq!(
        sync(&mut c, 5, "g", 1, &id, &[]).error_code,
        REBALANCE_IN_PROGRESS
    );
    let ra = Join::new("g")
        .member(&id)
        .protocols(&["range", "roundrobin"])
        .send(&mut c, 9);
    let rb = joiner.join().unwrap();
    assert_eq!((ra.error_code, rb.error_code), (0, 0));
    assert_eq!(
        ra.protocol_name.unwrap().as_str(),
        "roundrobin",
        "the only common protocol"
    );

    // group_max_size = 3: members and ids handed out with MEMBER_ID_REQUIRED both count.
    let mut d = broker.connect();
    assert_eq!(
        Join::new("g")
            .protocols(&["roundrobin"])
            .send(&mut d, 9)
            .error_code,
        MEMBER_ID_REQUIRED
    );
    let r = Join::new("g").protocols(&["roundrobin"]).send(&mut d, 9);
    assert_eq!(r.error_code, GROUP_MAX_SIZE_REACHED);
    assert_eq!(r.member_id.as_str(), "");
}

#[test]
fn oversized_assignments_and_commits_get_kafkas_errors_and_the_group_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut c = broker.connect();
    create_topic(&mut c, "wide", 300);

    let (r, id) = Join::new("big").handshake(&mut c, 9);
    assert_eq!(r.error_code, 0);
    let generation = r.generation_id;
    // The group record would exceed the offsets topic's max.message.bytes (1 MiB): Kafka's
    // storeGroup answers UNKNOWN_SERVER_ERROR and the group rebalances.
    let huge = "a".repeat(2 << 20);
    let r = sync(&mut c, 5, "big", generation, &id, &[(&id, &huge)]);
    assert_eq!(r.error_code, UNKNOWN_SERVER_ERROR);
    assert!(r.assignment.is_empty());
    assert_eq!(
        heartbeat(&mut c, 4, "big", generation, &id, None),
        REBALANCE_IN_PROGRESS
    );
    // Once the member behaves, the group is Stable again.
    let r = Join::new("big").member(&id).send(&mut c, 9);
    assert_eq!((r.error_code, r.generation_id), (0, generation + 1));
    let r = sync(&mut c, 5, "big", generation + 1, &id, &[(&id, "small")]);
    assert_eq!((r.error_code, &r.assignment[..]), (0, &b"small"[..]));
    assert_eq!(describe(&mut c, 5, "big").group_state.as_str(), "Stable");

    // 300 partitions with 4000 bytes of metadata each do not fit in one record batch: Kafka's
    // storeOffsets answers INVALID_COMMIT_OFFSET_SIZE for every partition and stores none.
    let metadata = "m".repeat(4000);
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("big")))
        .with_generation_id_or_member_epoch(generation + 1)
        .with_member_id(s(&id))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s("wide")))
            .with_partitions(
                (0..300)
                    .map(|p| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(9)
                            .with_committed_leader_epoch(-1)
                            .with_committed_metadata(Some(s(&metadata)))
                    })
                    .collect(),
            )]);
    let Some(ResponseKind::OffsetCommit(r)) = c.request(ApiKey::OffsetCommit, 9, req) else {
        panic!("OffsetCommit")
    };
    let codes: std::collections::BTreeSet<i16> = r.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(r.topics[0].partitions.len(), 300);
    assert_eq!(codes, [INVALID_COMMIT_OFFSET_SIZE].into());
    assert_eq!(fetch_offset(&mut c, 9, "big", "wide", 0).0, -1);
    // A commit that fits still goes through, and the group stays Stable.
    let member = ("big", generation + 1, id.as_str());
    assert_eq!(commit(&mut c, 9, member, ("wide", 0), 9, "ok"), 0);
    assert_eq!(fetch_offset(&mut c, 9, "big", "wide", 0).0, 9);
    assert_eq!(describe(&mut c, 5, "big").group_state.as_str(), "Stable");
}

#[test]
fn static_member_rejoins_without_rebalance_and_old_id_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut c = broker.connect();
    let (r, old_id) = Join::new("static").instance("inst-1").handshake(&mut c, 9);
    assert_eq!(r.error_code, 0, "static members skip MEMBER_ID_REQUIRED");
    assert!(old_id.starts_with("inst-1-"));
    assert_eq!(
        sync(&mut c, 5, "static", 1, &old_id, &[(&old_id, "mine")]).error_code,
        0
    );

    // The "restarted" instance joins with no member id: same generation, no rebalance.
    let mut c2 = broker.connect();
    let r = Join::new("static").instance("inst-1").send(&mut c2, 9);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, 1, "no rebalance");
    assert!(
        r.skip_assignment,
        "the rejoining leader keeps the current assignment (KIP-814)"
    );
    let new_id = r.member_id.to_string();
    assert_ne!(new_id, old_id);
    assert_eq!(
        describe(&mut c2, 5, "static").group_state.as_str(),
        "Stable"
    );
    let s = sync(&mut c2, 5, "static", 1, &new_id, &[]);
    assert_eq!((s.error_code, &s.assignment[..]), (0, &b"mine"[..]));

    // The old incarnation is fenced.
    assert_eq!(
        heartbeat(&mut c, 4, "static", 1, &old_id, Some("inst-1")),
        FENCED_INSTANCE_ID
    );
    assert_eq!(
        leave(&mut c, 5, "static", &old_id, Some("inst-1")),
        FENCED_INSTANCE_ID
    );
    assert_eq!(
        heartbeat(&mut c2, 4, "static", 1, &new_id, Some("inst-1")),
        0
    );
    // Leaving by instance id alone works (v3+ batch identity).
    assert_eq!(leave(&mut c2, 5, "static", "", Some("inst-1")), 0);
    assert_eq!(describe(&mut c2, 5, "static").group_state.as_str(), "Empty");
}

#[test]
fn committed_offsets_and_group_metadata_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = start(dir.path());
    let mut c = broker.connect();
    create_topic(&mut c, "orders", 3);
    let (_, id) = Join::new("durable").instance("i-1").handshake(&mut c, 9);
    assert_eq!(
        sync(&mut c, 5, "durable", 1, &id, &[(&id, "asg")]).error_code,
        0
    );
    for p in 0..3 {
        assert_eq!(
            commit(
                &mut c,
                9,
                ("durable", 1, &id),
                ("orders", p),
                100 + p as i64,
                &format!("meta{p}")
            ),
            0
        );
    }
    assert_eq!(
        commit(&mut c, 9, ("durable", 1, &id), ("orders", 0), 150, "later"),
        0
    );
    assert_eq!(
        commit(&mut c, 9, ("simple", -1, ""), ("orders", 2), 7, ""),
        0
    );
    broker.kill();

    let broker = start(dir.path());
    let mut c = broker.connect();
    assert_eq!(
        fetch_offset(&mut c, 9, "durable", "orders", 0),
        (150, "later".into(), 0)
    );
    assert_eq!(
        fetch_offset(&mut c, 5, "durable", "orders", 1),
        (101, "meta1".into(), 0)
    );
    assert_eq!(
        fetch_offset(&mut c, 1, "durable", "orders", 2),
        (102, "meta2".into(), 0)
    );
    assert_eq!(
        fetch_offset(&mut c, 9, "simple", "orders", 2),
        (7, String::new(), 0)
    );
    // The group itself came back: generation 1, its static member and assignment.
    let d = describe(&mut c, 5, "durable");
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.members[0].member_id.as_str(), id);
    assert_eq!(
        d.members[0].group_instance_id.as_ref().unwrap().as_str(),
        "i-1"
    );
    assert_eq!(&d.members[0].member_assignment[..], b"asg");
    assert_eq!(heartbeat(&mut c, 4, "durable", 1, &id, Some("i-1")), 0);
}

#[test]
fn offsets_topic_is_created_by_the_first_group_request_and_stays_internal() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut c = broker.connect();
    let offsets_dir = dir.path().join("data/__consumer_offsets-0");
    assert!(
        !offsets_dir.exists(),
        "a broker that has seen no group has no offsets topic"
    );

    let req = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![s("lazy")]);
    let Some(ResponseKind::FindCoordinator(r)) = c.request(ApiKey::FindCoordinator, 4, req) else {
        panic!("FindCoordinator")
    };
    assert_eq!(r.coordinators[0].error_code, 0);
    assert!(
        offsets_dir.is_dir(),
        "FindCoordinator created __consumer_offsets"
    );

    let all = MetadataRequest::default().with_topics(None);
    let Some(ResponseKind::Metadata(m)) = c.request(ApiKey::Metadata, 12, all) else {
        panic!()
    };
    assert!(
        m.topics
            .iter()
            .all(|t| t.name.as_ref().map(|n| n.0.as_str()) != Some("__consumer_offsets")),
        "internal topics are hidden from the all-topics listing"
    );
    let by_name = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(s("__consumer_offsets"))))]));
    let Some(ResponseKind::Metadata(m)) = c.request(ApiKey::Metadata, 12, by_name) else {
        panic!()
    };
    assert_eq!((m.topics[0].error_code, m.topics[0].is_internal), (0, true));
    assert_eq!(
        m.topics[0].partitions.len(),
        3,
        "offsets_topic_num_partitions from the config"
    );

    // Clients may not append to it (Kafka: "Cannot append to internal topic").
    let td = produce_request::TopicProduceData::default()
        .with_name(TopicName(s("__consumer_offsets")))
        .with_partition_data(vec![produce_request::PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(common::batch(&["forged"])))]);
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![td]);
    let Some(ResponseKind::Produce(r)) = c.request(ApiKey::Produce, 9, req) else {
        panic!()
    };
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 17,
        "INVALID_TOPIC_EXCEPTION"
    );
}

#[test]
fn a_node_alone_with_offsets_replication_factor_3_has_no_coordinator() {
    // As Kafka: the offsets topic cannot be placed on fewer live brokers than its replication factor,
    // so there is no coordinator; every group write says so, nothing is kept in memory meanwhile.
    let (dir, broker) = common::start_with_config(
        "offsets_topic_replication_factor = 3\noffsets_topic_num_partitions = 3\n",
    );
    let mut c = broker.connect();
    create_topic(&mut c, "t", 1);
    for v in [0, 3, 4, 6] {
        let req = if v >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g")])
        } else {
            FindCoordinatorRequest::default().with_key(s("g"))
        };
        let Some(ResponseKind::FindCoordinator(r)) = c.request(ApiKey::FindCoordinator, v, req)
        else {
            panic!("FindCoordinator v{v}")
        };
        let (code, node) = match r.coordinators.first() {
            Some(k) => (k.error_code, k.node_id.0),
            None => (r.error_code, r.node_id.0),
        };
        assert_eq!((code, node), (COORDINATOR_NOT_AVAILABLE, -1), "v{v}");
    }
    assert!(
        broker.wait_for_line(
            &["cannot create the offsets topic", "replication factor of 3"],
            Duration::from_secs(5)
        ),
        "the broker says why"
    );
    assert_eq!(
        Join::new("g").send(&mut c, 5).error_code,
        COORDINATOR_NOT_AVAILABLE,
        "JoinGroup"
    );
    assert_eq!(
        commit(&mut c, 8, ("g", -1, ""), ("t", 0), 5, ""),
        COORDINATOR_NOT_AVAILABLE,
        "OffsetCommit from outside group management"
    );
    assert!(
        !dir.path().join("data/__consumer_offsets-0").exists(),
        "no offsets topic"
    );
}

/// (topic id, [(partition, offset, error)]) of each topic of a v10 OffsetFetch of group `ids`.
type ById = Vec<(Uuid, Vec<(i32, i64, i16)>)>;

fn fetch_by_id(c: &mut Client, topics: Option<Vec<(Uuid, Vec<i32>)>>) -> ById {
    let topics = topics.map(|ts| {
        ts.into_iter()
            .map(|(id, ps)| {
                OffsetFetchRequestTopics::default()
                    .with_topic_id(id)
                    .with_partition_indexes(ps)
            })
            .collect()
    });
    let req = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(s("ids")))
        .with_member_epoch(-1)
        .with_topics(topics)]);
    let Some(ResponseKind::OffsetFetch(r)) = c.request(ApiKey::OffsetFetch, 10, req) else {
        panic!("OffsetFetch v10")
    };
    assert_eq!(r.groups[0].error_code, 0);
    let mut out: ById = r.groups[0]
        .topics
        .iter()
        .map(|t| {
            let ps = t.partitions.iter();
            let ps = ps.map(|p| (p.partition_index, p.committed_offset, p.error_code));
            (t.topic_id, ps.collect())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn offset_commit_and_fetch_v10_name_topics_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut c = broker.connect();
    create_topic(&mut c, "by-id", 2);
    let id = topic_id(&mut c, "by-id");
    assert!(!id.is_nil());
    let stranger = Uuid::new_v4();
    let part = |p: i32, offset: i64| {
        OffsetCommitRequestPartition::default()
            .with_partition_index(p)
            .with_committed_offset(offset)
            .with_committed_leader_epoch(-1)
            .with_committed_metadata(Some(s("m")))
    };
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("ids")))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![part(0, 10), part(1, 11)]),
            OffsetCommitRequestTopic::default()
                .with_topic_id(stranger)
                .with_partitions(vec![part(0, 5)]),
        ]);
    let Some(ResponseKind::OffsetCommit(r)) = c.request(ApiKey::OffsetCommit, 10, req) else {
        panic!("OffsetCommit v10")
    };
    let mut answered: Vec<(Uuid, Vec<(i32, i16)>)> = r
        .topics
        .iter()
        .map(|t| {
            let ps = t
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.error_code));
            (t.topic_id, ps.collect())
        })
        .collect();
    answered.sort();
    let mut expected = vec![
        (id, vec![(0, 0), (1, 0)]),
        (stranger, vec![(0, UNKNOWN_TOPIC_ID)]),
    ];
    expected.sort();
    assert_eq!(answered, expected, "an unknown id is UNKNOWN_TOPIC_ID");

    // Offsets committed by id are the topic's, whichever version reads them.
    assert_eq!(
        fetch_offset(&mut c, 9, "ids", "by-id", 1),
        (11, "m".to_string(), 0)
    );
    let mut expected = vec![
        (id, vec![(0, 10, 0), (1, 11, 0)]),
        (stranger, vec![(3, -1, UNKNOWN_TOPIC_ID)]),
    ];
    expected.sort();
    assert_eq!(
        fetch_by_id(&mut c, Some(vec![(id, vec![0, 1]), (stranger, vec![3])])),
        expected
    );
    assert_eq!(
        fetch_by_id(&mut c, None),
        vec![(id, vec![(0, 10, 0), (1, 11, 0)])],
        "every committed topic, named by id"
    );

    // A deleted topic has no id left to name it by: a fetch of every topic leaves it out.
    let req = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(s("by-id"))])
        .with_timeout_ms(5000);
    let Some(ResponseKind::DeleteTopics(r)) = c.request(ApiKey::DeleteTopics, 4, req) else {
        panic!("DeleteTopics")
    };
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(fetch_by_id(&mut c, None), vec![]);
}

/// Bytes in the `.log` files of a partition directory.
fn log_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

#[test]
fn the_offsets_topic_is_compacted_and_keeps_what_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("compact.toml");
    std::fs::write(
        &cfg,
        "offsets_topic_num_partitions = 1\n\
         offsets_topic_segment_bytes = 2048\n\
         log_cleaner_backoff_ms = 20\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let args = ["--config", cfg.to_str().unwrap()];
    let mut broker = BrokerProcess::start(&data, &args);
    let mut c = broker.connect();
    create_topic(&mut c, "t", 2);
    // A deleted group leaves tombstones; a live one commits 300 times over the same two partitions.
    assert_eq!(commit(&mut c, 9, ("gone", -1, ""), ("t", 0), 5, ""), 0);
    let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("gone"))]);
    let Some(ResponseKind::DeleteGroups(r)) = c.request(ApiKey::DeleteGroups, 2, req) else {
        panic!("DeleteGroups")
    };
    assert_eq!(r.results[0].error_code, 0);
    let mut written = 0u64;
    for i in 0..150 {
        for p in 0..2 {
            assert_eq!(commit(&mut c, 9, ("live", -1, ""), ("t", p), i, "m"), 0);
        }
        written += 2;
    }
    // Each commit record is ~100 bytes. Compacted, the sealed segments keep a few of them at most;
    // passes run while the commits go on, so check after each one until the log is that small.
    let partition = data.join("__consumer_offsets-0");
    let bound = written * 100 / 4;
    while log_bytes(&partition) >= bound {
        assert!(
            broker.wait_for_line(
                &["compacted log", "__consumer_offsets-0"],
                Duration::from_secs(30)
            ),
            "the offsets topic was not compacted below {bound} bytes: {}",
            log_bytes(&partition)
        );
    }

    // What the compacted topic replays after a SIGKILL: the latest commits, and no deleted group.
    broker.kill();
    let broker = BrokerProcess::start(&data, &args);
    let mut c = broker.connect();
    for p in 0..2 {
        assert_eq!(
            fetch_offset(&mut c, 9, "live", "t", p),
            (149, "m".to_string(), 0)
        );
    }
    assert_eq!(fetch_offset(&mut c, 9, "gone", "t", 0).0, -1);
    let req = ListGroupsRequest::default();
    let Some(ResponseKind::ListGroups(r)) = c.request(ApiKey::ListGroups, 4, req) else {
        panic!("ListGroups")
    };
    let names: Vec<&str> = r.groups.iter().map(|g| g.group_id.as_str()).collect();
    assert_eq!(names, vec!["live"]);
}

/// Every committed (topic, partition, offset) of `group`, from an OffsetFetch of all topics.
fn all_offsets(c: &mut Client, group: &str) -> Vec<(String, i32, i64)> {
    let req = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(None)]);
    let Some(ResponseKind::OffsetFetch(r)) = c.request(ApiKey::OffsetFetch, 9, req) else {
        panic!("OffsetFetch")
    };
    let mut out: Vec<(String, i32, i64)> = r.groups[0]
        .topics
        .iter()
        .flat_map(|t| {
            let name = t.name.to_string();
            let ps = t.partitions.iter();
            ps.map(move |p| (name.clone(), p.partition_index, p.committed_offset))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_deleted_topic_takes_its_committed_offsets_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = start(dir.path());
    let mut c = broker.connect();
    create_topic(&mut c, "doomed", 1);
    create_topic(&mut c, "kept", 1);
    assert_eq!(commit(&mut c, 9, ("g", -1, ""), ("doomed", 0), 7, ""), 0);
    assert_eq!(commit(&mut c, 9, ("g", -1, ""), ("kept", 0), 8, ""), 0);
    let req = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(s("doomed"))])
        .with_timeout_ms(5000);
    let Some(ResponseKind::DeleteTopics(r)) = c.request(ApiKey::DeleteTopics, 4, req) else {
        panic!("DeleteTopics")
    };
    assert_eq!(r.responses[0].error_code, 0);
    let expected = vec![("kept".to_string(), 0, 8)];
    assert_eq!(all_offsets(&mut c, "g"), expected);

    // The removal is durable, and a topic created again under the name starts without offsets.
    broker.kill();
    let broker = start(dir.path());
    let mut c = broker.connect();
    assert_eq!(all_offsets(&mut c, "g"), expected);
    create_topic(&mut c, "doomed", 1);
    assert_eq!(fetch_offset(&mut c, 9, "g", "doomed", 0).0, -1);
}
