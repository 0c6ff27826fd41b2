//! In-process tests of the coordinator's durable side: offset expiry (empty groups, explicit
//! retentions, unsubscribed topics of stable groups; the tombstones it writes surviving a restart),
//! and the replayed state after DeleteGroups.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::group::Member;
use super::*;
use crate::broker::topics::TopicRequest;
use crate::broker::Broker;
use crate::config::Config;

pub(super) async fn broker(dir: &Path) -> Arc<Broker> {
    let config = Config {
        data_dir: dir.to_path_buf(),
        offsets_topic_num_partitions: 4,
        group_initial_rebalance_delay_ms: 0,
        ..Config::default()
    };
    let b = Broker::start(config, "127.0.0.1".into(), 9092)
        .await
        .unwrap();
    // These tests call the coordinator directly, not through the handlers that create the topic.
    assert!(b.group.ensure_offsets_topic().await);
    b
}

pub(super) async fn create_topic(b: &Broker, name: &str) {
    let planned = b
        .plan_topic(&TopicRequest {
            name: name.into(),
            num_partitions: 2,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: BTreeMap::new(),
        })
        .unwrap();
    b.create_topic(planned).await.unwrap();
}

pub(super) async fn simple_commit(b: &Broker, group: &str, partition: i32, offset: i64) {
    commit_to(b, group, ("t", partition), offset, None).await;
}

/// A commit from outside group management; `retention_ms` as OffsetCommit v2-v4 send it.
async fn commit_to(
    b: &Broker,
    group: &str,
    (topic, partition): (&str, i32),
    offset: i64,
    retention_ms: Option<i64>,
) {
    let results = b
        .group
        .commit(
            group,
            -1,
            "",
            None,
            vec![(
                topic.into(),
                vec![CommitPartition {
                    partition,
                    offset,
                    leader_epoch: -1,
                    metadata: Some("m".into()),
                    retention_ms,
                }],
            )],
        )
        .await
        .unwrap();
    assert!(results[0].1[0].1.is_ok());
}

pub(super) fn committed(b: &Broker, group: &str, partition: i32) -> Option<i64> {
    let fetched = b
        .group
        .fetch_offsets(group, Some(vec![("t".into(), vec![partition])]))
        .unwrap();
    fetched[0].1[0].1.as_ref().map(|c| c.offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_of_empty_groups_expire_and_stay_expired_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    create_topic(&b, "t").await;
    simple_commit(&b, "old", 0, 5).await;
    simple_commit(&b, "old", 1, 6).await;
    simple_commit(&b, "fresh", 0, 7).await;
    let retention = b.group.config.offsets_retention_ms;

    // Nothing is due yet.
    b.group.expire_offsets(crate::clock::now_ms()).await;
    assert_eq!(committed(&b, "old", 0), Some(5));

    // Simple-commit groups expire per offset, from its commit time: make "fresh" newer.
    let later = crate::clock::now_ms() + retention + 1;
    {
        let mut groups = b.group.lock();
        let fresh = groups.get_mut("fresh").unwrap();
        for c in fresh.offsets.values_mut() {
            c.commit_timestamp += retention;
        }
    }
    b.group.expire_offsets(later).await;
    assert_eq!(committed(&b, "old", 0), None);
    assert_eq!(committed(&b, "old", 1), None);
    assert!(
        !b.group.list().iter().any(|g| g.group_id == "old"),
        "an empty group without offsets is removed"
    );
    assert_eq!(committed(&b, "fresh", 0), Some(7));

    b.shutdown().await;
    drop(b);
    let b = broker(dir.path()).await;
    assert_eq!(committed(&b, "old", 0), None, "tombstones replayed");
    assert_eq!(committed(&b, "fresh", 0), Some(7));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_groups_stay_deleted_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    create_topic(&b, "t").await;
    simple_commit(&b, "gone", 0, 1).await;
    simple_commit(&b, "kept", 0, 2).await;
    b.group.delete_group("gone").await.unwrap();
    assert_eq!(
        b.group.delete_group("gone").await,
        Err(GroupError::GroupIdNotFound)
    );
    b.shutdown().await;
    drop(b);
    let b = broker(dir.path()).await;
    assert_eq!(committed(&b, "gone", 0), None);
    assert_eq!(committed(&b, "kept", 0), Some(2));
    let names: Vec<String> = b.group.list().into_iter().map(|g| g.group_id).collect();
    assert_eq!(names, vec!["kept".to_string()]);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_retention_expires_its_offset_at_that_time_even_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    create_topic(&b, "t").await;
    let start = crate::clock::now_ms();
    commit_to(&b, "g", ("t", 0), 5, Some(60_000)).await;
    commit_to(&b, "g", ("t", 1), 6, None).await;
    b.shutdown().await;
    drop(b);

    let b = broker(dir.path()).await;
    b.group.expire_offsets(start + 30_000).await;
    assert_eq!(committed(&b, "g", 0), Some(5));
    b.group.expire_offsets(start + 61_000).await;
    assert_eq!(committed(&b, "g", 0), None, "expired at its own time");
    assert_eq!(
        committed(&b, "g", 1),
        Some(6),
        "the broker's retention still holds"
    );
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stable_consumer_group_keeps_offsets_of_subscribed_topics_only() {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    create_topic(&b, "t").await;
    create_topic(&b, "old-subscription").await;
    commit_to(&b, "g", ("t", 0), 5, None).await;
    commit_to(&b, "g", ("old-subscription", 0), 6, None).await;
    // The group is now a Stable consumer group whose one member subscribes to "t" only.
    let mut subscription = BytesMut::new();
    subscription.put_i16(0);
    ConsumerProtocolSubscription::default()
        .with_topics(vec![StrBytes::from_static_str("t")])
        .encode(&mut subscription, 0)
        .unwrap();
    {
        let mut groups = b.group.lock();
        let g = groups.get_mut("g").unwrap();
        g.state = GroupState::Stable;
        g.protocol_type = Some("consumer".into());
        g.protocol = Some("range".into());
        g.members.insert(
            "m".into(),
            Member {
                id: "m".into(),
                uid: 1,
                instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 10_000,
                protocols: vec![("range".into(), subscription.freeze())],
                assignment: bytes::Bytes::new(),
                join_waiter: None,
                sync_waiter: None,
                last_heartbeat: tokio::time::Instant::now(),
            },
        );
    }
    let later = crate::clock::now_ms() + b.group.config.offsets_retention_ms + 1;
    b.group.expire_offsets(later).await;
    let fetched = b.group.fetch_offsets("g", None).unwrap();
    let topics: Vec<&str> = fetched.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(topics, vec!["t"]);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_of_one_group_land_in_the_order_they_took_effect() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    create_topic(&b, "t").await;
    // Many commits of one partition at once: whichever took effect last in memory must also be
    // last in the log, so what a restart replays is what was answered last.
    let commits = (0..32).map(|i| simple_commit(&b, "race", 0, i));
    futures_join_all(commits).await;
    let in_memory = committed(&b, "race", 0);
    assert!(in_memory.is_some());
    b.shutdown().await;
    drop(b);
    let b = broker(dir.path()).await;
    assert_eq!(committed(&b, "race", 0), in_memory);
    b.shutdown().await;
}

/// Runs the futures concurrently on this task (no `futures` crate here).
async fn futures_join_all<F: std::future::Future<Output = ()>>(fs: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in fs {
        set.push(Box::pin(f));
    }
    std::future::poll_fn(|cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}
