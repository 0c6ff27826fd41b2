//! TxnOffsetCommit over a real socket against a broker process: v0-3 advertised (not the
//! KIP-890 versions), a transactional commit answered once stored and then pending, so that
//! OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT for its partition (v7 and v8)
//! while a plain fetch still sees nothing committed; an older producer epoch is fenced, v3's group
//! metadata is checked, and unknown partitions are answered per partition. Then the whole
//! `sendOffsetsToTransaction` exchange (InitProducerId, AddOffsetsToTxn, TxnOffsetCommit, EndTxn):
//! the offset counts once the transaction commits, never when it aborts, and after a kill -9.

mod common;

use common::txn::retrying;
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
const INVALID_TXN_STATE: i16 = 48;
const TRANSACTION_ABORTABLE: i16 = 120;

/// TxnOffsetCommit of `offset` for `topic`-`partition`; per (topic, partition) error codes.
fn txn_commit(
    c: &mut Client,
    version: i16,
    txn_id: &str,
    group: &str,
    (producer_id, epoch): (i64, i16),
    generation: i32,
    (topic, partition, offset): (&str, i32, i64),
) -> Vec<(String, i32, i16)> {
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(txn_id.into())))
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
    assert_eq!((txn.min_version, txn.max_version), (0, 5));

    assert_eq!(create_topic(&mut c, 5, "t", 2, &[]).topics[0].error_code, 0);
    for v in 0..=5 {
        let (group, txn_id) = (format!("g{v}"), format!("tx{v}"));
        let producer = init_txn(&mut c, &txn_id);
        if v < 5 {
            // Not added to the transaction (no AddOffsetsToTxn): the offsets partition fails the
            // coordinator's verification (KIP-890), and nothing is pending. v4 clients know
            // TRANSACTION_ABORTABLE; v5 (Transactions V2) has the partition added instead.
            let refused = txn_commit(&mut c, v, &txn_id, &group, producer, -1, ("t", 0, 41));
            let code = if v < 4 {
                INVALID_TXN_STATE
            } else {
                TRANSACTION_ABORTABLE
            };
            assert_eq!(refused, vec![("t".to_string(), 0, code)], "v{v}");
            assert_eq!(fetch_offset(&mut c, 8, &group, "t", 0).2, 0, "v{v}: stable");
            let (pid, epoch) = producer;
            assert_eq!(
                retrying(|| (add_offsets_of(&mut c, &txn_id, pid, epoch, &group), ())).0,
                0
            );
        }
        let answered = txn_commit(&mut c, v, &txn_id, &group, producer, -1, ("t", 0, 42));
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

    // The producer's epoch moved on (initialised again, its open transaction aborted): the
    // older one is fenced, as the coordinator answers the offsets partition's verification.
    let (pid, old_epoch) = init_txn(&mut c, "tx3");
    let (pid2, epoch) = init_txn(&mut c, "tx3");
    assert_eq!((pid2, epoch), (pid, old_epoch + 1));
    assert_eq!(
        retrying(|| (add_offsets_of(&mut c, "tx3", pid, epoch, "g3"), ())).0,
        0
    );
    assert_eq!(
        txn_commit(&mut c, 3, "tx3", "g3", (pid, epoch), -1, ("t", 1, 7))[0].2,
        0
    );
    assert_eq!(
        txn_commit(&mut c, 3, "tx3", "g3", (pid, old_epoch), -1, ("t", 1, 8))[0].2,
        INVALID_PRODUCER_EPOCH
    );
    // v3: an unknown group named with a generation; unknown partitions, per partition.
    assert_eq!(
        retrying(|| (add_offsets_of(&mut c, "tx3", pid, epoch, "nobody"), ())).0,
        0
    );
    assert_eq!(
        txn_commit(&mut c, 3, "tx3", "nobody", (pid, epoch), 5, ("t", 0, 1))[0].2,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        txn_commit(&mut c, 3, "tx3", "g3", (pid, epoch), -1, ("t", 7, 1)),
        vec![("t".to_string(), 7, UNKNOWN_TOPIC_OR_PARTITION)]
    );
    assert_eq!(
        txn_commit(&mut c, 3, "tx3", "g3", (pid, epoch), -1, ("nope", 0, 1)),
        vec![("nope".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION)]
    );
}

fn end_txn(c: &mut Client, pid: i64, epoch: i16, commit: bool) -> i16 {
    end_txn_of(c, "tx-e2e", pid, epoch, commit)
}

fn end_txn_of(c: &mut Client, txn_id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(txn_id.into())))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    match c.request(ApiKey::EndTxn, 3, req) {
        Some(ResponseKind::EndTxn(r)) => r.error_code,
        other => panic!("EndTxn: {other:?}"),
    }
}

fn add_offsets(c: &mut Client, pid: i64, epoch: i16, group: &str) -> i16 {
    add_offsets_of(c, "tx-e2e", pid, epoch, group)
}

fn add_offsets_of(c: &mut Client, txn_id: &str, pid: i64, epoch: i16, group: &str) -> i16 {
    let req = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(txn_id.into())))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(StrBytes::from_string(group.into())));
    match c.request(ApiKey::AddOffsetsToTxn, 3, req) {
        Some(ResponseKind::AddOffsetsToTxn(r)) => r.error_code,
        other => panic!("AddOffsetsToTxn: {other:?}"),
    }
}

/// FindCoordinator (creating the transaction log) and InitProducerId for `txn_id`, retried as a
/// client does: its producer id and epoch.
fn init_txn(c: &mut Client, txn_id: &str) -> (i64, i16) {
    let (code, ()) = retrying(|| {
        let req = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(txn_id.into()))
            .with_key_type(1);
        match c.request(ApiKey::FindCoordinator, 3, req) {
            Some(ResponseKind::FindCoordinator(r)) => (r.error_code, ()),
            other => panic!("FindCoordinator: {other:?}"),
        }
    });
    assert_eq!(code, 0);
    let (code, producer) = retrying(|| {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(txn_id.into()))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        match c.request(ApiKey::InitProducerId, 4, req) {
            Some(ResponseKind::InitProducerId(r)) => {
                (r.error_code, (r.producer_id.0, r.producer_epoch))
            }
            other => panic!("InitProducerId: {other:?}"),
        }
    });
    assert_eq!(code, 0, "InitProducerId({txn_id})");
    producer
}

/// OffsetFetch v8 with require_stable until the partition is stable; its offset.
fn stable_offset(c: &mut Client, group: &str) -> i64 {
    let (code, offset) = retrying(|| {
        let (offset, _, code) = fetch_offset(c, 8, group, "t", 0);
        // UNSTABLE_OFFSET_COMMIT until the markers are written (after EndTxn's answer).
        (
            if code == UNSTABLE_OFFSET_COMMIT {
                15
            } else {
                code
            },
            offset,
        )
    });
    assert_eq!(code, 0);
    offset
}

#[test]
fn offsets_sent_to_a_transaction_count_once_it_commits_and_never_if_it_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    assert_eq!(create_topic(&mut c, 5, "t", 1, &[]).topics[0].error_code, 0);
    // sendOffsetsToTransaction as the Java producer does it: FindCoordinator (which creates the
    // transaction log), InitProducerId, AddOffsetsToTxn, TxnOffsetCommit (v3; a simple group
    // here), EndTxn.
    let (code, ()) = retrying(|| {
        let req = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_static_str("tx-e2e"))
            .with_key_type(1);
        match c.request(ApiKey::FindCoordinator, 3, req) {
            Some(ResponseKind::FindCoordinator(r)) => (r.error_code, ()),
            other => panic!("FindCoordinator: {other:?}"),
        }
    });
    assert_eq!(code, 0);
    let (code, (pid, epoch)) = retrying(|| {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx-e2e"))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        match c.request(ApiKey::InitProducerId, 4, req) {
            Some(ResponseKind::InitProducerId(r)) => {
                (r.error_code, (r.producer_id.0, r.producer_epoch))
            }
            other => panic!("InitProducerId: {other:?}"),
        }
    });
    assert_eq!(code, 0);

    assert_eq!(
        retrying(|| (add_offsets(&mut c, pid, epoch, "eos"), ())).0,
        0
    );
    let answered = txn_commit(&mut c, 3, "tx-e2e", "eos", (pid, epoch), -1, ("t", 0, 42));
    assert_eq!(answered, vec![("t".to_string(), 0, 0)]);
    assert_eq!(
        fetch_offset(&mut c, 8, "eos", "t", 0).2,
        UNSTABLE_OFFSET_COMMIT
    );
    assert_eq!(retrying(|| (end_txn(&mut c, pid, epoch, true), ())).0, 0);
    assert_eq!(stable_offset(&mut c, "eos"), 42);

    // The next transaction aborts: its offset never counts.
    assert_eq!(
        retrying(|| (add_offsets(&mut c, pid, epoch, "eos"), ())).0,
        0
    );
    let answered = txn_commit(&mut c, 3, "tx-e2e", "eos", (pid, epoch), -1, ("t", 0, 50));
    assert_eq!(answered, vec![("t".to_string(), 0, 0)]);
    assert_eq!(retrying(|| (end_txn(&mut c, pid, epoch, false), ())).0, 0);
    assert_eq!(stable_offset(&mut c, "eos"), 42);

    // Both outcomes are in __consumer_offsets: a restart replays them.
    broker.kill();
    drop(broker);
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    assert_eq!(stable_offset(&mut c, "eos"), 42);
}
