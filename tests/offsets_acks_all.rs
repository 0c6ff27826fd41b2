//! Offset commits are acks=all writes to `__consumer_offsets`, on a 3-node cluster of real processes
//! with `offsets.topic.replication.factor=3` and `min.insync.replicas=3`: a commit is acknowledged
//! once all in-sync replicas have it; with a replica gone it times out after `offsets.commit.timeout.ms`
//! (or is refused as soon as the ISR has shrunk below min.insync.replicas), answered
//! COORDINATOR_NOT_AVAILABLE as Kafka's coordinator answers both, and OffsetFetch never shows a commit
//! the ISR does not have; with the replica back, commits go on.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, ClusterOptions};
use common::{commit, fetch_offset, name, Client};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use vltava::group::records::partition_for;

const SETTLE: Duration = Duration::from_secs(30);
const COMMIT_TIMEOUT_MS: u64 = 3000;
const OFFSETS_PARTITIONS: i32 = 3;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;

fn find_coordinator(c: &mut Client, group: &str) -> (i16, i32) {
    let req = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(0);
    match c.request(ApiKey::FindCoordinator, 3, req) {
        Some(ResponseKind::FindCoordinator(r)) => (r.error_code, r.node_id.0),
        other => panic!("FindCoordinator: {other:?}"),
    }
}

/// (replicas, ISR) of `__consumer_offsets`-`partition` as node `id` reports them.
fn offsets_partition(c: &Cluster, id: i32, partition: i32) -> (Vec<i32>, BTreeSet<i32>) {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("__consumer_offsets")))
        ]))
        .with_allow_auto_topic_creation(false);
    let Some(ResponseKind::Metadata(m)) = c.client(id).request(ApiKey::Metadata, 12, req) else {
        panic!("Metadata")
    };
    let p = m.topics[0]
        .partitions
        .iter()
        .find(|p| p.partition_index == partition)
        .unwrap_or_else(|| panic!("partition {partition}: {m:?}"));
    (
        p.replica_nodes.iter().map(|b| b.0).collect(),
        p.isr_nodes.iter().map(|b| b.0).collect(),
    )
}

#[test]
fn offset_commits_are_acknowledged_once_min_insync_replicas_have_them() {
    let mut cluster = Cluster::start(
        3,
        ClusterOptions {
            extra: vec![
                ("offsets.topic.replication.factor".into(), "3".into()),
                (
                    "offsets.topic.num.partitions".into(),
                    OFFSETS_PARTITIONS.to_string(),
                ),
                ("min.insync.replicas".into(), "3".into()),
                ("replica.lag.time.max.ms".into(), "2000".into()),
                (
                    "offsets.commit.timeout.ms".into(),
                    COMMIT_TIMEOUT_MS.to_string(),
                ),
            ],
            ..ClusterOptions::default()
        },
    );
    let group = "acks-all";
    // COORDINATOR_NOT_AVAILABLE until all three brokers have registered (the offsets topic needs
    // three live ones); clients retry, and so does this.
    let coordinator = cluster.await_state("a coordinator", SETTLE, |c| {
        match find_coordinator(&mut c.client(1), group) {
            (0, node) => Some(node),
            (COORDINATOR_NOT_AVAILABLE, _) => None,
            other => panic!("FindCoordinator: {other:?}"),
        }
    });
    let partition = partition_for(group, OFFSETS_PARTITIONS);
    // A topic to commit offsets of (RF 1 on any node: only the offsets topic matters here).
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(name("t"))
            .with_num_partitions(1)
            .with_replication_factor(1)])
        .with_timeout_ms(10_000);
    let Some(ResponseKind::CreateTopics(r)) =
        cluster
            .client(coordinator)
            .request(ApiKey::CreateTopics, 7, req)
    else {
        panic!("CreateTopics")
    };
    assert_eq!(r.topics[0].error_code, 0);
    // With every replica in sync, commits are acknowledged (the first once the coordinator's
    // metadata has the topic).
    let mut c = cluster.client(coordinator);
    cluster.await_state("a first commit", SETTLE, |_| {
        (commit(&mut c, 8, (group, -1, ""), ("t", 0), 5, "") == 0).then_some(())
    });

    let (replicas, _) = offsets_partition(&cluster, coordinator, partition);
    assert_eq!(replicas.len(), 3, "{replicas:?}");
    let follower = replicas
        .into_iter()
        .find(|&r| r != coordinator)
        .expect("a follower");
    cluster.kill(follower);
    // The ISR still names the follower (until it lags past replica.lag.time.max.ms): the commit is
    // appended, the high watermark does not pass it, and the wait ends with
    // offsets.commit.timeout.ms (or with the ISR shrinking under it).
    // Meanwhile OffsetFetch answers what is committed, not the commit on its way.
    let mut writer = cluster.client(coordinator);
    let waiting =
        std::thread::spawn(move || commit(&mut writer, 8, (group, -1, ""), ("t", 0), 6, ""));
    let mut c = cluster.client(coordinator);
    let mut fetched = BTreeSet::new();
    while !waiting.is_finished() {
        fetched.insert(fetch_offset(&mut c, 7, group, "t", 0).0);
    }
    assert_eq!(
        waiting.join().expect("commit thread"),
        COORDINATOR_NOT_AVAILABLE,
        "a commit that 3 in-sync replicas cannot have"
    );
    assert_eq!(fetched, BTreeSet::from([5]), "offsets fetched meanwhile");
    // Once the ISR has shrunk below min.insync.replicas, commits are refused before they are
    // appended: at once, not after the timeout.
    cluster.await_state("the ISR without the killed follower", SETTLE, |c| {
        (!offsets_partition(c, coordinator, partition)
            .1
            .contains(&follower))
        .then_some(())
    });
    let started = Instant::now();
    assert_eq!(
        commit(&mut c, 8, (group, -1, ""), ("t", 0), 7, ""),
        COORDINATOR_NOT_AVAILABLE
    );
    assert!(
        started.elapsed() < Duration::from_millis(COMMIT_TIMEOUT_MS),
        "NOT_ENOUGH_REPLICAS answers without waiting: {:?}",
        started.elapsed()
    );
    assert_eq!(
        fetch_offset(&mut c, 7, group, "t", 0).0,
        5,
        "failed commits are not visible"
    );

    // The follower back and in sync again: commits are acknowledged.
    cluster.start_nodes(&[follower]);
    cluster.await_state("the follower back in the ISR", SETTLE, |c| {
        offsets_partition(c, coordinator, partition)
            .1
            .contains(&follower)
            .then_some(())
    });
    let mut c = cluster.client(coordinator);
    assert_eq!(commit(&mut c, 8, (group, -1, ""), ("t", 0), 8, ""), 0);
    assert_eq!(fetch_offset(&mut c, 7, group, "t", 0).0, 8);
}
