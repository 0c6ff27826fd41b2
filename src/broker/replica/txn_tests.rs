//! In-process tests of read_committed serving: a transactional batch appended on the leader holds the
//! last stable offset, a marker appended through the partition moves it, and Fetch (isolation level 1)
//! and ListOffsets answer with the LSO and the aborted transactions.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record};

use super::tests::{broker, ctx, place, produce};
use crate::broker::Broker;
use crate::log::{encode_batch, plain_record, validate_batches};

const ME: i32 = 1;
const PID: i64 = 5;

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.into()))
}

/// One transactional record of producer `PID` (epoch 0) at sequence `seq`.
fn txn_batch(seq: i32) -> BytesMut {
    let record = Record {
        transactional: true,
        producer_id: PID,
        producer_epoch: 0,
        sequence: seq,
        ..plain_record(0, crate::clock::now_ms(), None, Some(Bytes::from("t")))
    };
    encode_batch(&[record], Compression::None).unwrap()
}

async fn fetch_at(b: &Arc<Broker>, topic: &str, offset: i64, isolation: i8) -> PartitionData {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_partition_max_bytes(1 << 20)])]);
    match crate::handlers::fetch::handle(ctx(b, 11), req).await {
        Ok(Some(ResponseKind::Fetch(mut r))) => r.responses.remove(0).partitions.remove(0),
        other => panic!("unexpected fetch answer {other:?}"),
    }
}

/// Base offsets of the batches a fetch returned.
fn bases(p: &PartitionData) -> Vec<i64> {
    let records = p.records.clone().unwrap_or_default();
    if records.is_empty() {
        return Vec::new();
    }
    validate_batches(&records, u32::MAX)
        .unwrap()
        .iter()
        .map(|h| h.base_offset)
        .collect()
}

fn aborted(p: &PartitionData) -> Option<Vec<(i64, i64)>> {
    p.aborted_transactions.as_ref().map(|v| {
        v.iter()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect()
    })
}

async fn latest(b: &Arc<Broker>, topic: &str, isolation: i8) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)
                .with_current_leader_epoch(-1)])]);
    match crate::handlers::list_offsets::handle(ctx(b, 7), req).await {
        Ok(Some(ResponseKind::ListOffsets(r))) => r.topics[0].partitions[0].offset,
        other => panic!("unexpected list offsets answer {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_fetch_stops_at_the_lso_and_lists_aborted_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    place(&b, "tx", ME, 0, &[ME]).await;
    let p = b.partitions.get("tx", 0).unwrap();
    produce(&b, 9, "tx").await;
    // Offset 1: producer 5's transaction opens; offset 2: a plain record after it.
    let records = txn_batch(0);
    let headers = validate_batches(&records, u32::MAX).unwrap();
    let info = p
        .append_as_leader(records, &headers, crate::clock::now_ms())
        .unwrap();
    assert_eq!(info.base_offset, 1);
    produce(&b, 9, "tx").await;
    assert_eq!((p.high_watermark(), p.last_stable_offset()), (3, 1));

    let committed = fetch_at(&b, "tx", 0, 1).await;
    assert_eq!(committed.error_code, 0);
    assert_eq!(bases(&committed), vec![0]);
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (3, 1)
    );
    assert_eq!(aborted(&committed), Some(Vec::new()));
    // Between the LSO and the high watermark: nothing, and no error.
    let waiting = fetch_at(&b, "tx", 2, 1).await;
    assert_eq!((waiting.error_code, bases(&waiting)), (0, Vec::new()));
    // read_uncommitted sees everything up to the high watermark.
    let all = fetch_at(&b, "tx", 0, 0).await;
    assert_eq!(bases(&all), vec![0, 1, 2]);
    assert_eq!(aborted(&all), None);
    assert_eq!(latest(&b, "tx", 1).await, 1);
    assert_eq!(latest(&b, "tx", 0).await, 3);

    // The coordinator aborts: the marker lands at 3 and is committed at once (the ISR is this broker).
    let (marker, _) = p
        .append_marker(PID, 0, false, 0, crate::clock::now_ms())
        .unwrap();
    assert_eq!(marker.base_offset, 3);
    assert_eq!((p.high_watermark(), p.last_stable_offset()), (4, 4));
    let committed = fetch_at(&b, "tx", 0, 1).await;
    assert_eq!(bases(&committed), vec![0, 1, 2, 3]);
    assert_eq!(committed.last_stable_offset, 4);
    assert_eq!(aborted(&committed), Some(vec![(PID, 1)]));
    // A read starting after the transaction's first batch still learns of it (its marker is ahead).
    assert_eq!(
        aborted(&fetch_at(&b, "tx", 2, 1).await),
        Some(vec![(PID, 1)])
    );
    // A read past its marker does not.
    produce(&b, 9, "tx").await;
    assert_eq!(aborted(&fetch_at(&b, "tx", 4, 1).await), Some(Vec::new()));
    assert_eq!(latest(&b, "tx", 1).await, 5);
    // A stale coordinator is fenced, with Kafka's error code.
    let fenced = p
        .append_marker(PID, 0, true, -1, crate::clock::now_ms())
        .unwrap_err();
    assert_eq!(
        fenced.code(),
        kafka_protocol::error::ResponseError::TransactionCoordinatorFenced
    );
    b.shutdown().await;
}
