//! The transactional APIs' answers (`api.rs`) on the in-process coordinator: Kafka's error codes
//! per version, unknown partitions, and FindCoordinator's TRANSACTION key.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId,
    InitProducerIdRequest, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::tests::{harness, image, state};
use super::*;
use crate::cluster::{PartitionInfo, TopicInfo};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn init_req(pid: i64, epoch: i16) -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s("t"))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
}

fn add_req(epoch: i16, topics: &[(&str, &[i32])]) -> AddPartitionsToTxnRequest {
    AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s("t")))
        .with_v3_and_below_producer_id(ProducerId(1000))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(
            topics
                .iter()
                .map(|(t, ps)| {
                    AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(ps.to_vec())
                })
                .collect(),
        )
}

/// The cluster's image with topic "a" of two partitions.
fn with_topic_a() -> crate::cluster::MetadataImage {
    let mut img = (*image(1, 3)).clone();
    img.topics.insert(
        "a".into(),
        TopicInfo {
            name: "a".into(),
            id: uuid::Uuid::new_v4(),
            configs: Default::default(),
            partitions: (0..2)
                .map(|p| PartitionInfo {
                    partition: p,
                    leader: 1,
                    leader_epoch: 0,
                    replicas: vec![1],
                    isr: vec![1],
                    partition_epoch: 0,
                })
                .collect(),
            internal: false,
        },
    );
    img
}

fn codes(r: &kafka_protocol::messages::AddPartitionsToTxnResponse) -> Vec<(String, i32, i16)> {
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.partition_error_code,
                )
            })
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_transaction_through_the_api_answers() {
    let h = harness().await;
    let img = with_topic_a();
    let r = api::init_producer_id(&h.c, &init_req(-1, -1), 3).await;
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, 1000, 0)
    );

    let r = api::add_partitions_to_txn(&h.c, &img, &add_req(0, &[("a", &[0, 5]), ("zz", &[0])]), 3)
        .await;
    assert_eq!(
        codes(&r),
        vec![("a".into(), 0, 55), ("a".into(), 5, 3), ("zz".into(), 0, 3)],
        "OPERATION_NOT_ATTEMPTED beside UNKNOWN_TOPIC_OR_PARTITION, nothing added"
    );
    assert_eq!(state(&h, "t"), Some(TxnState::Empty));
    let r = api::add_partitions_to_txn(&h.c, &img, &add_req(0, &[("a", &[0, 1])]), 3).await;
    assert_eq!(codes(&r), vec![("a".into(), 0, 0), ("a".into(), 1, 0)]);
    // A stale epoch: INVALID_PRODUCER_EPOCH before v2, PRODUCER_FENCED from v2.
    let r = api::add_partitions_to_txn(&h.c, &img, &add_req(7, &[("a", &[0])]), 1).await;
    assert_eq!(codes(&r), vec![("a".into(), 0, 47)]);
    let r = api::add_partitions_to_txn(&h.c, &img, &add_req(7, &[("a", &[0])]), 2).await;
    assert_eq!(codes(&r), vec![("a".into(), 0, 90)]);

    let offsets = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s("t")))
        .with_producer_id(ProducerId(1000))
        .with_producer_epoch(0)
        .with_group_id(GroupId(s("g")));
    assert_eq!(
        api::add_offsets_to_txn(&h.c, &offsets, 3, 50)
            .await
            .error_code,
        0
    );
    let p = crate::group::records::partition_for("g", 50);
    assert!(h
        .c
        .state_of("t")
        .unwrap()
        .partitions
        .contains(&("__consumer_offsets".into(), p)));

    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s("t")))
        .with_producer_id(ProducerId(1000))
        .with_producer_epoch(0)
        .with_committed(true);
    assert_eq!(api::end_txn(&h.c, &end, 3).await.error_code, 0);
    // Markers under way (or done): a second commit is CONCURRENT_TRANSACTIONS or success.
    let again = api::end_txn(&h.c, &end, 3).await.error_code;
    assert!(again == 51 || again == 0, "{again}");
    let fenced = end.clone().with_producer_epoch(3);
    assert_eq!(api::end_txn(&h.c, &fenced, 1).await.error_code, 47);
    assert_eq!(api::end_txn(&h.c, &fenced, 2).await.error_code, 90);

    // KIP-360 with a stale epoch: INVALID_PRODUCER_EPOCH before v4.
    super::tests::eventually("CompleteCommit", || {
        state(&h, "t") == Some(TxnState::CompleteCommit)
    })
    .await;
    let r = api::init_producer_id(&h.c, &init_req(1000, 9), 3).await;
    assert_eq!((r.error_code, r.producer_id.0), (47, -1));
    let r = api::init_producer_id(&h.c, &init_req(1000, 9), 4).await;
    assert_eq!(r.error_code, 90);
    let r = api::init_producer_id(&h.c, &init_req(1000, 0), 4).await;
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, 1000, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn find_coordinator_names_the_partition_leader() {
    let h = harness().await;
    assert_eq!(
        api::find_coordinator(&h.c, "").await,
        Err(TxnError::InvalidRequest)
    );
    let b = api::find_coordinator(&h.c, "t").await.unwrap();
    assert_eq!((b.id, b.host.as_str()), (1, "h1"));
}
