//! Transactions on the wire against the real broker process: the coordinator's answers (FindCoordinator
//! TRANSACTION, InitProducerId, AddPartitionsToTxn, EndTxn) and the partition leader's verification
//! of transactional batches (KIP-890 part 1): a batch for a partition not added to the producer's
//! transaction, or arriving after the transaction ended, is refused and never holds the last stable
//! offset; one for an added partition is appended, and its transaction's marker moves the LSO.

mod common;

use bytes::Bytes;
use common::{create_topic, name, BrokerProcess, Client};
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const NONE: i16 = 0;
const INVALID_TXN_STATE: i16 = 48;
const TRANSACTION_ABORTABLE: i16 = 120;
const PRODUCER_FENCED: i16 = 90;

fn txn_id(s: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(s.to_string()))
}

fn find_coordinator(c: &mut Client, id: &str) -> FindCoordinatorResponse {
    match c.request(
        ApiKey::FindCoordinator,
        3,
        FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(id.to_string()))
            .with_key_type(1),
    ) {
        Some(ResponseKind::FindCoordinator(r)) => r,
        other => panic!("FindCoordinator: {other:?}"),
    }
}

fn init(c: &mut Client, id: &str) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(id)))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match c.request(ApiKey::InitProducerId, 4, req) {
        Some(ResponseKind::InitProducerId(r)) => {
            assert_eq!(r.error_code, NONE, "InitProducerId({id})");
            (r.producer_id.0, r.producer_epoch)
        }
        other => panic!("InitProducerId: {other:?}"),
    }
}

fn add_partition(c: &mut Client, id: &str, (pid, epoch): (i64, i16), topic: &str, p: i32) -> i16 {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![p])]);
    match c.request(ApiKey::AddPartitionsToTxn, 3, req) {
        Some(ResponseKind::AddPartitionsToTxn(r)) => {
            r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
        }
        other => panic!("AddPartitionsToTxn: {other:?}"),
    }
}

/// AddPartitionsToTxn v4 as a partition leader asks it: each partition's code.
fn verify(c: &mut Client, id: &str, (pid, epoch): (i64, i16), topic: &str, ps: &[i32]) -> Vec<i16> {
    let req = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(txn_id(id))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_verify_only(true)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(name(topic))
                .with_partitions(ps.to_vec())]),
    ]);
    match c.request(ApiKey::AddPartitionsToTxn, 4, req) {
        Some(ResponseKind::AddPartitionsToTxn(r)) => {
            assert_eq!(r.error_code, NONE);
            let results = &r.results_by_transaction[0].topic_results[0].results_by_partition;
            ps.iter()
                .map(|p| {
                    results
                        .iter()
                        .find(|x| x.partition_index == *p)
                        .map_or(-1, |x| x.partition_error_code)
                })
                .collect()
        }
        other => panic!("AddPartitionsToTxn v4: {other:?}"),
    }
}

fn end_txn(c: &mut Client, id: &str, (pid, epoch): (i64, i16), commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    match c.request(ApiKey::EndTxn, 3, req) {
        Some(ResponseKind::EndTxn(r)) => r.error_code,
        other => panic!("EndTxn: {other:?}"),
    }
}

/// One transactional batch of `pid`/`epoch` whose first record has sequence `seq`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, values: &[&str]) -> Bytes {
    use kafka_protocol::records::{Compression, Record};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            producer_id: pid,
            producer_epoch: epoch,
            sequence: seq + i as i32,
            transactional: true,
            ..vltava::log::plain_record(
                i as i64,
                now,
                Some(Bytes::from(format!("k{i}"))),
                Some(Bytes::from(v.to_string())),
            )
        })
        .collect();
    vltava::log::encode_batch(&records, Compression::None)
        .unwrap()
        .freeze()
}

fn produce(
    c: &mut Client,
    version: i16,
    id: &str,
    topic: &str,
    p: i32,
    records: Bytes,
) -> PartitionProduceResponse {
    let req = ProduceRequest::default()
        .with_transactional_id(Some(txn_id(id)))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(records))])]);
    match c.request(ApiKey::Produce, version, req) {
        Some(ResponseKind::Produce(mut r)) => r.responses.remove(0).partition_responses.remove(0),
        other => panic!("Produce v{version}: {other:?}"),
    }
}

/// (last stable offset, high watermark) of `topic`-`p`, by ListOffsets with each isolation level.
fn lso_and_hw(c: &mut Client, topic: &str, p: i32) -> (i64, i64) {
    let mut at = |isolation: i8| {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(p)
                    .with_timestamp(-1)])]);
        match c.request(ApiKey::ListOffsets, 5, req) {
            Some(ResponseKind::ListOffsets(r)) => {
                let part = &r.topics[0].partitions[0];
                assert_eq!(part.error_code, NONE);
                part.offset
            }
            other => panic!("ListOffsets: {other:?}"),
        }
    };
    (at(1), at(0))
}

#[test]
fn a_transactional_batch_opens_a_transaction_only_in_a_partition_added_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    create_topic(&mut c, 5, "txv", 2, &[]);
    let found = find_coordinator(&mut c, "tv-1");
    assert_eq!(found.error_code, NONE);
    let producer = init(&mut c, "tv-1");
    let (pid, epoch) = producer;

    // Nothing added yet: refused, with the code each Produce version knows, and nothing open.
    let r = produce(
        &mut c,
        9,
        "tv-1",
        "txv",
        0,
        txn_batch(pid, epoch, 0, &["x"]),
    );
    assert_eq!(r.error_code, INVALID_TXN_STATE, "{:?}", r.error_message);
    let r = produce(
        &mut c,
        11,
        "tv-1",
        "txv",
        0,
        txn_batch(pid, epoch, 0, &["x"]),
    );
    assert_eq!(r.error_code, TRANSACTION_ABORTABLE, "{:?}", r.error_message);
    assert_eq!(lso_and_hw(&mut c, "txv", 0), (0, 0));

    // Added: appended, and the open transaction holds the LSO at its first offset.
    assert_eq!(add_partition(&mut c, "tv-1", producer, "txv", 0), NONE);
    assert_eq!(
        verify(&mut c, "tv-1", producer, "txv", &[0, 1]),
        vec![NONE, TRANSACTION_ABORTABLE]
    );
    let r = produce(
        &mut c,
        9,
        "tv-1",
        "txv",
        0,
        txn_batch(pid, epoch, 0, &["a", "b"]),
    );
    assert_eq!(
        (r.error_code, r.base_offset),
        (NONE, 0),
        "{:?}",
        r.error_message
    );
    assert_eq!(lso_and_hw(&mut c, "txv", 0), (0, 2));
    // The partition not added stays refused while the transaction is open.
    let r = produce(
        &mut c,
        9,
        "tv-1",
        "txv",
        1,
        txn_batch(pid, epoch, 0, &["y"]),
    );
    assert_eq!(r.error_code, INVALID_TXN_STATE);

    // Another epoch than the coordinator's is fenced.
    assert_eq!(
        verify(&mut c, "tv-1", (pid, epoch - 1), "txv", &[0]),
        vec![PRODUCER_FENCED]
    );

    // Aborted: the marker moves the LSO past the transaction (to the high watermark).
    assert_eq!(end_txn(&mut c, "tv-1", producer, false), NONE);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while lso_and_hw(&mut c, "txv", 0) != (3, 3) {
        assert!(
            std::time::Instant::now() < until,
            "the abort marker did not land"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A late batch of the ended transaction (a retry, a zombie) cannot open a new one.
    let r = produce(
        &mut c,
        9,
        "tv-1",
        "txv",
        0,
        txn_batch(pid, epoch, 2, &["late"]),
    );
    assert_eq!(r.error_code, INVALID_TXN_STATE, "{:?}", r.error_message);
    assert_eq!(
        lso_and_hw(&mut c, "txv", 0),
        (3, 3),
        "no transaction left open"
    );
}
