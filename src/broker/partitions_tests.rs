//! In-process tests of how reconcile applies partition roles and leader epochs from the image,
//! and reports the leadership changes.

use std::collections::BTreeMap;

use super::partition::{LeadershipChange, Role};
use super::partitions::PartitionManager;
use crate::cluster::{MetadataCommand, MetadataImage, PartitionInfo, TopicInfo};
use crate::log::LogConfig;

const ME: i32 = 1;

fn assign(leader: i32, leader_epoch: i32, replicas: &[i32]) -> PartitionInfo {
    PartitionInfo {
        partition: 0,
        leader,
        leader_epoch,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        partition_epoch: 0,
    }
}

fn image_with(partition: PartitionInfo) -> MetadataImage {
    let mut image = MetadataImage::empty();
    image.apply(MetadataCommand::CreateTopic(TopicInfo {
        name: "t".into(),
        id: uuid::Uuid::from_u128(7),
        configs: BTreeMap::new(),
        partitions: vec![partition],
        internal: false,
    }));
    image
}

fn change(is_leader: bool, leader_epoch: i32) -> Vec<LeadershipChange> {
    vec![LeadershipChange {
        topic: "t".into(),
        partition: 0,
        is_leader,
        leader_epoch,
    }]
}

#[test]
fn reconcile_applies_roles_and_epochs_and_reports_leadership_changes() {
    let dir = tempfile::tempdir().unwrap();
    let manager = PartitionManager::new(dir.path().to_path_buf(), ME, LogConfig::default());
    let mut events = manager.subscribe_leadership();

    // Opened as leader: reported.
    assert_eq!(
        manager.reconcile(&image_with(assign(ME, 0, &[1, 2]))),
        change(true, 0)
    );
    let p = manager.get("t", 0).unwrap();
    assert_eq!(p.role(), Role::Leader);
    assert_eq!(p.state().isr, vec![1, 2]);
    assert_eq!(
        events.try_recv().unwrap().as_slice(),
        change(true, 0).as_slice()
    );

    // The same image again changes nothing.
    assert!(manager
        .reconcile(&image_with(assign(ME, 0, &[1, 2])))
        .is_empty());

    // Leadership moves to broker 2 at a new epoch: the same log, now a follower.
    let mut moved = assign(2, 1, &[1, 2]);
    moved.isr = vec![2];
    assert_eq!(manager.reconcile(&image_with(moved)), change(false, 1));
    let same = manager.get("t", 0).unwrap();
    assert!(std::sync::Arc::ptr_eq(&p, &same));
    assert_eq!(p.role(), Role::Follower { leader: 2 });
    assert_eq!(p.leader_epoch(), 1);
    assert_eq!(p.state().isr, vec![2]);
    assert_eq!(
        events.try_recv().unwrap().as_slice(),
        change(false, 1).as_slice()
    );

    // An ISR change alone is applied but is no leadership change.
    assert!(manager
        .reconcile(&image_with(assign(2, 1, &[1, 2])))
        .is_empty());
    assert_eq!(p.state().isr, vec![1, 2]);

    // Back to us; then the topic goes, and with it the leadership.
    assert_eq!(
        manager.reconcile(&image_with(assign(ME, 2, &[1, 2]))),
        change(true, 2)
    );
    assert_eq!(manager.leaderships(), change(true, 2));
    assert_eq!(manager.reconcile(&MetadataImage::empty()), change(false, 2));
    assert!(manager.get("t", 0).is_none());
}

#[test]
fn partitions_assigned_elsewhere_are_not_opened() {
    let dir = tempfile::tempdir().unwrap();
    let manager = PartitionManager::new(dir.path().to_path_buf(), ME, LogConfig::default());
    assert!(manager
        .reconcile(&image_with(assign(2, 0, &[2, 3])))
        .is_empty());
    assert!(manager.get("t", 0).is_none());
}

#[test]
fn a_check_of_the_clients_leader_epoch_fences_older_and_refuses_newer() {
    let dir = tempfile::tempdir().unwrap();
    let manager = PartitionManager::new(dir.path().to_path_buf(), ME, LogConfig::default());
    manager.reconcile(&image_with(assign(ME, 5, &[1])));
    let p = manager.get("t", 0).unwrap();
    let code = |requested, leader| {
        p.check_leader_epoch(requested, leader)
            .map_err(|e| e.code())
    };
    use kafka_protocol::error::ResponseError::*;
    assert_eq!(code(-1, true), Ok(5));
    assert_eq!(code(5, true), Ok(5));
    assert_eq!(code(4, true), Err(FencedLeaderEpoch));
    assert_eq!(code(6, true), Err(UnknownLeaderEpoch));
    manager.reconcile(&image_with(assign(2, 6, &[1, 2])));
    // The epoch is checked first, then leadership (Kafka's `localLogWithEpochOrThrow`).
    assert_eq!(code(5, true), Err(FencedLeaderEpoch));
    assert_eq!(code(6, true), Err(NotLeaderOrFollower));
    assert_eq!(code(6, false), Ok(6));
}
