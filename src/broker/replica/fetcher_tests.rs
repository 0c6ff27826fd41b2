//! Replica fetches in-process: the leader's side through the Fetch handler (only replicas, diverging
//! epochs) and the follower's side applying answers to its partition (appends, truncation, stale roles).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::{EpochEndOffset, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, ResponseKind};

use super::fetcher::{apply, Followed};
use super::tests::{broker, ctx, place, produce};
use crate::broker::partition::{Partition, ReplicaState as Assignment, Role};
use crate::broker::Broker;
use crate::handlers;
use crate::log::{LogConfig, PartitionLog};

const ME: i32 = 1;
const OTHER: i32 = 2;

/// A replica's Fetch v15 of partition 0 as broker `replica_id` at leader epoch 5.
pub(super) async fn replica_fetch(
    b: &Arc<Broker>,
    topic: &str,
    replica_id: i32,
    fetch_offset: i64,
    last_fetched_epoch: i32,
) -> PartitionData {
    fetch_with(b, topic, replica_id, fetch_offset, last_fetched_epoch, 5).await
}

/// A replica's Fetch v15 from offset 0 at `current_leader_epoch` (-1: none).
async fn replica_fetch_at(
    b: &Arc<Broker>,
    topic: &str,
    replica_id: i32,
    current_leader_epoch: i32,
) -> PartitionData {
    fetch_with(b, topic, replica_id, 0, -1, current_leader_epoch).await
}

async fn fetch_with(
    b: &Arc<Broker>,
    topic: &str,
    replica_id: i32,
    fetch_offset: i64,
    last_fetched_epoch: i32,
    current_leader_epoch: i32,
) -> PartitionData {
    let id = b.metadata.image().topics[topic].id;
    let req = FetchRequest::default()
        .with_replica_state(ReplicaState::default().with_replica_id(BrokerId(replica_id)))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current_leader_epoch)
                .with_fetch_offset(fetch_offset)
                .with_last_fetched_epoch(last_fetched_epoch)
                .with_partition_max_bytes(1 << 20)])]);
    match handlers::fetch::handle(ctx(b, 15), req).await {
        Ok(Some(ResponseKind::Fetch(mut r))) => r.responses.remove(0).partitions.remove(0),
        other => panic!("unexpected fetch answer {other:?}"),
    }
}

fn diverging(d: &PartitionData) -> (i32, i64) {
    (d.diverging_epoch.epoch, d.diverging_epoch.end_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_serve_replicas_only_and_answer_diverging_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    place(&b, "led", ME, 5, &[ME, OTHER]).await;
    for _ in 0..3 {
        let r = produce(&b, 10, "led").await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let all = replica_fetch(&b, "led", OTHER, 0, -1).await;
    assert_eq!((all.error_code, diverging(&all)), (0, (-1, -1)));
    assert_eq!(
        all.high_watermark, 0,
        "nothing is committed before the follower has it"
    );
    let records = all.records.unwrap();
    assert_eq!(crate::log::validate_fetched(&records).unwrap().0.len(), 3);

    // Caught up at the leader's epoch: nothing more, no divergence.
    let caught_up = replica_fetch(&b, "led", OTHER, 3, 5).await;
    assert_eq!((caught_up.error_code, diverging(&caught_up)), (0, (-1, -1)));
    assert!(caught_up.records.unwrap_or_default().is_empty());
    assert_eq!(caught_up.high_watermark, 3, "the ISR has it all now");
    // At epoch 5 but past its end: the follower must cut its log back to 3.
    let past = replica_fetch(&b, "led", OTHER, 4, 5).await;
    assert_eq!((past.error_code, diverging(&past)), (0, (5, 3)));
    assert!(past.records.unwrap_or_default().is_empty());
    // An epoch older than any the leader has ends where the leader's first epoch starts.
    assert_eq!(
        diverging(&replica_fetch(&b, "led", OTHER, 1, 2).await),
        (2, 0)
    );
    // A consumer's fetch is never checked for divergence.
    assert_eq!(
        diverging(&replica_fetch(&b, "led", -1, 1, 2).await),
        (-1, -1)
    );

    // An epoch after the leader's latest cannot be placed: out of range, with the leader's bounds.
    let ahead = replica_fetch(&b, "led", OTHER, 3, 6).await;
    assert_eq!(ahead.error_code, ResponseError::OffsetOutOfRange.code());
    assert_eq!((ahead.log_start_offset, ahead.high_watermark), (0, 3));

    // Broker 9 is no replica of the partition: at the leader's epoch it may be one the leader does
    // not know of yet (UNKNOWN_LEADER_EPOCH, retried), without an epoch NOT_LEADER_OR_FOLLOWER.
    let stranger = replica_fetch(&b, "led", 9, 0, -1).await;
    assert_eq!(
        stranger.error_code,
        ResponseError::UnknownLeaderEpoch.code()
    );
    let stranger = replica_fetch_at(&b, "led", 9, -1).await;
    assert_eq!(
        stranger.error_code,
        ResponseError::NotLeaderOrFollower.code()
    );
}

/// A follower of OTHER at epoch 5 whose log holds `batches` single-record batches at `epoch`.
fn follower(dir: &std::path::Path, batches: usize, epoch: i32) -> (Followed, Vec<Bytes>) {
    let leader_dir = dir.join("leader");
    let mut leader = PartitionLog::open(&leader_dir, LogConfig::default()).unwrap();
    let mut written = Vec::new();
    for _ in 0..batches {
        let b = super::tests::batch();
        let (headers, _) = crate::log::validate_fetched(&b).unwrap();
        let info = leader.append(b[..].into(), &headers, epoch, 0).unwrap();
        written.push(leader.read(info.base_offset, 1, true).unwrap().bytes);
    }
    let log = PartitionLog::open(&dir.join("follower"), LogConfig::default()).unwrap();
    let state = Assignment {
        node_id: ME,
        role: Role::Follower { leader: OTHER },
        leader_epoch: 5,
        partition_epoch: 0,
        replicas: vec![OTHER, ME],
        isr: vec![OTHER, ME],
    };
    let partition = Arc::new(Partition::new("t".into(), uuid::Uuid::nil(), 0, state, log));
    (
        Followed {
            partition,
            leader_epoch: 5,
        },
        written,
    )
}

fn records(data: Bytes, hw: i64) -> PartitionData {
    PartitionData::default()
        .with_records(Some(data))
        .with_high_watermark(hw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_append_truncate_on_divergence_and_drop_answers_for_an_old_role() {
    let dir = tempfile::tempdir().unwrap();
    let (f, batches) = follower(dir.path(), 4, 3);
    let p = f.partition.clone();
    assert_eq!(
        apply(OTHER, &f, 0, records(batches[..3].concat().into(), 2)),
        None
    );
    assert_eq!(p.follower_fetch_state(), (3, Some(3)));
    assert_eq!(p.high_watermark(), 2, "the leader's high watermark");

    // The leader's epoch 3 ended at 2: the third batch goes, the log goes on from there.
    let diverged = PartitionData::default()
        .with_diverging_epoch(EpochEndOffset::default().with_epoch(3).with_end_offset(2));
    assert_eq!(apply(OTHER, &f, 3, diverged), None);
    assert_eq!(p.follower_fetch_state(), (2, Some(3)));
    assert_eq!(p.high_watermark(), 2);
    // Batches that do not chain (offset 3 onto an end of 2) are refused and nothing is written.
    let gap = apply(OTHER, &f, 2, records(batches[0].clone(), 4));
    assert!(gap.is_some(), "offset 0 is below the end: refused");
    assert_eq!(p.follower_fetch_state().0, 2);

    // An answer fetched from the old leader or at an old epoch is dropped.
    let stale = Followed {
        partition: p.clone(),
        leader_epoch: 4,
    };
    assert_eq!(
        apply(OTHER, &stale, 2, records(batches[2].clone(), 3)),
        None
    );
    assert_eq!(apply(3, &f, 2, records(batches[2].clone(), 3)), None);
    assert_eq!(p.follower_fetch_state().0, 2);
    // The leader's log start moved (DeleteRecords there): this log's follows, up to its end.
    let moved = records(batches[2].clone(), 3).with_log_start_offset(1);
    assert_eq!(apply(OTHER, &f, 2, moved), None);
    assert_eq!((p.log_start_offset(), p.follower_fetch_state().0), (1, 3));
    let beyond = PartitionData::default()
        .with_records(Some(Bytes::new()))
        .with_high_watermark(9)
        .with_log_start_offset(9);
    assert_eq!(apply(OTHER, &f, 3, beyond), None);
    assert_eq!((p.log_start_offset(), p.high_watermark()), (3, 3));
    // Out of range where this log already ends at the leader's end: nothing to cut, a pause.
    let oor = PartitionData::default()
        .with_error_code(ResponseError::OffsetOutOfRange.code())
        .with_log_start_offset(3)
        .with_high_watermark(3);
    assert!(apply(OTHER, &f, 3, oor.clone()).is_some());
    // Out of range past the leader's end: this log is cut back to it.
    let shorter = oor.with_log_start_offset(0).with_high_watermark(2);
    assert_eq!(apply(OTHER, &f, 3, shorter), None);
    assert_eq!(p.follower_fetch_state().0, 2);
    // A refusal by the leader is a cause to pause the partition.
    let refused = PartitionData::default().with_error_code(ResponseError::FencedLeaderEpoch.code());
    assert!(apply(OTHER, &f, 2, refused)
        .unwrap()
        .contains("FencedLeaderEpoch"));
}
