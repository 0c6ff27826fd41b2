//! TxnOffsetCommit over a real socket against a broker process: v0-3 advertised (not the
//! KIP-890 versions), a transactional commit answered once stored and then pending, so that
//! OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT for its partition (v7 and v8)
//! while a plain fetch still sees nothing committed; an older producer epoch is fenced, v3's group
//! metadata is checked, and unknown partitions are answered per partition. The transaction's
//! marker (WriteTxnMarkers) is the transaction coordinator's: its effect is tested in-process
//! (`src/group/tests_txn.rs`).

mod common;

use common::{create_topic, fetch_offset, name, BrokerProcess, Client};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// TxnOffsetCommit of `offset` for `topic`-`partition`; per (topic, partition) error codes.
fn txn_commit(
    c: &mut Client,
    version: i16,
    group: &str,
    (producer_id, epoch): (i64, i16),
    generation: i32,
    (topic, partition, offset): (&str, i32, i64),
) -> Vec<(String, i32, i16)> {
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_generation_id(generation)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(StrBytes::from_static_str("m")))])]);
    match c.request(ApiKey::TxnOffsetCommit, version, req) {
        Some(ResponseKind::TxnOffsetCommit(r)) => r
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
            })
            .collect(),
        other => panic!("TxnOffsetCommit v{version}: {other:?}"),
    }
}

#[test]
fn transactional_offsets_are_pending_and_unstable_for_require_stable() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();

    let Some(ResponseKind::ApiVersions(v)) =
        c.request(ApiKey::ApiVersions, 3, ApiVersionsRequest::default())
    else {
        panic!("ApiVersions")
    };
    let txn = v
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::TxnOffsetCommit as i16)
        .expect("TxnOffsetCommit advertised");
    assert_eq!((txn.min_version, txn.max_version), (0, 3));

    assert_eq!(create_topic(&mut c, 5, "t", 2, &[]).topics[0].error_code, 0);
    for v in 0..=3 {
        let group = format!("g{v}");
        let answered = txn_commit(&mut c, v, &group, (1000 + v as i64, 0), -1, ("t", 0, 42));
        assert_eq!(answered, vec![("t".to_string(), 0, 0)], "v{v}");
        // Pending: a require_stable fetch is told to retry, a plain one sees nothing committed.
        for fetch_v in [7, 8] {
            let (offset, _, code) = fetch_offset(&mut c, fetch_v, &group, "t", 0);
            assert_eq!(
                (offset, code),
                (-1, UNSTABLE_OFFSET_COMMIT),
                "fetch v{fetch_v}"
            );
        }
        assert_eq!(
            fetch_offset(&mut c, 6, &group, "t", 0),
            (-1, String::new(), 0)
        );
        assert_eq!(
            fetch_offset(&mut c, 8, &group, "t", 1).2,
            0,
            "partition 1 is stable"
        );
    }

    // The producer's epoch moved on: an older one is fenced.
    assert_eq!(
        txn_commit(&mut c, 3, "g3", (1003, 1), -1, ("t", 1, 7))[0].2,
        0
    );
    assert_eq!(
        txn_commit(&mut c, 3, "g3", (1003, 0), -1, ("t", 1, 8))[0].2,
        INVALID_PRODUCER_EPOCH
    );
    // v3: an unknown group named with a generation; unknown partitions, per partition.
    assert_eq!(
        txn_commit(&mut c, 3, "nobody", (2000, 0), 5, ("t", 0, 1))[0].2,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        txn_commit(&mut c, 3, "g3", (1003, 1), -1, ("t", 7, 1)),
        vec![("t".to_string(), 7, UNKNOWN_TOPIC_OR_PARTITION)]
    );
    assert_eq!(
        txn_commit(&mut c, 3, "g3", (1003, 1), -1, ("nope", 0, 1)),
        vec![("nope".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION)]
    );
}
