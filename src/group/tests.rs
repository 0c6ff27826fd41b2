//! In-process tests of the coordinator's durable side: offset expiry of empty groups (with the
//! tombstones it writes surviving a restart), and the replayed state after DeleteGroups.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::broker::topics::TopicRequest;
use crate::config::Config;

async fn broker(dir: &Path) -> Arc<Broker> {
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
    assert!(b.group.ensure_offsets_topic(&b).await);
    b
}

async fn create_topic(b: &Broker, name: &str) {
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

fn simple_commit(b: &Broker, group: &str, partition: i32, offset: i64) {
    let results = b
        .group
        .commit(
            group,
            -1,
            "",
            None,
            vec![(
                "t".into(),
                vec![CommitPartition {
                    partition,
                    offset,
                    leader_epoch: -1,
                    metadata: Some("m".into()),
                }],
            )],
        )
        .unwrap();
    assert!(results[0].1[0].1.is_ok());
}

fn committed(b: &Broker, group: &str, partition: i32) -> Option<i64> {
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
    simple_commit(&b, "old", 0, 5);
    simple_commit(&b, "old", 1, 6);
    simple_commit(&b, "fresh", 0, 7);
    let retention = b.group.config.offsets_retention_ms;

    // Nothing is due yet.
    b.group.expire_offsets(crate::handlers::now_ms());
    assert_eq!(committed(&b, "old", 0), Some(5));

    // Simple-commit groups expire per offset, from its commit time: make "fresh" newer.
    let later = crate::handlers::now_ms() + retention + 1;
    {
        let mut groups = b.group.lock();
        let fresh = groups.get_mut("fresh").unwrap();
        for c in fresh.offsets.values_mut() {
            c.commit_timestamp += retention;
        }
    }
    b.group.expire_offsets(later);
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
    simple_commit(&b, "gone", 0, 1);
    simple_commit(&b, "kept", 0, 2);
    b.group.delete_group("gone").unwrap();
    assert_eq!(
        b.group.delete_group("gone"),
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
