//! Transactional requests on the wire for the broker-process tests: the coordinator's APIs,
//! transactional batches and Produce, and what a partition shows of its transactions
//! (DescribeProducers, the last stable offset).

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{name, Client};

pub const NONE: i16 = 0;
pub const INVALID_TXN_STATE: i16 = 48;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const TRANSACTION_ABORTABLE: i16 = 120;
pub const PRODUCER_FENCED: i16 = 90;

pub fn txn_id(s: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(s.to_string()))
}

pub fn find_coordinator(c: &mut Client, id: &str) -> FindCoordinatorResponse {
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

pub fn init(c: &mut Client, id: &str) -> (i64, i16) {
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

pub fn add_partition(
    c: &mut Client,
    id: &str,
    (pid, epoch): (i64, i16),
    topic: &str,
    p: i32,
) -> i16 {
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
pub fn verify(c: &mut Client, id: &str, producer: (i64, i16), topic: &str, ps: &[i32]) -> Vec<i16> {
    leader_request(c, id, producer, (topic, ps), true)
}

/// AddPartitionsToTxn v5 as a leader sends it for a Transactions V2 client: adds the partitions.
pub fn leader_add(
    c: &mut Client,
    id: &str,
    producer: (i64, i16),
    topic: &str,
    ps: &[i32],
) -> Vec<i16> {
    leader_request(c, id, producer, (topic, ps), false)
}

fn leader_request(
    c: &mut Client,
    id: &str,
    (pid, epoch): (i64, i16),
    (topic, ps): (&str, &[i32]),
    verify_only: bool,
) -> Vec<i16> {
    let req = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(txn_id(id))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_verify_only(verify_only)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(name(topic))
                .with_partitions(ps.to_vec())]),
    ]);
    let version = if verify_only { 4 } else { 5 };
    match c.request(ApiKey::AddPartitionsToTxn, version, req) {
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
        other => panic!("AddPartitionsToTxn v{version}: {other:?}"),
    }
}

pub fn end_txn(c: &mut Client, id: &str, producer: (i64, i16), commit: bool) -> i16 {
    end_txn_v(c, 3, id, producer, commit).0
}

/// EndTxn of `version`: the error code, and (v5+) the producer id and epoch to go on with.
pub fn end_txn_v(
    c: &mut Client,
    version: i16,
    id: &str,
    (pid, epoch): (i64, i16),
    commit: bool,
) -> (i16, (i64, i16)) {
    let req = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    match c.request(ApiKey::EndTxn, version, req) {
        Some(ResponseKind::EndTxn(r)) => (r.error_code, (r.producer_id.0, r.producer_epoch)),
        other => panic!("EndTxn v{version}: {other:?}"),
    }
}

/// One transactional batch of `pid`/`epoch` whose first record has sequence `seq`.
pub fn txn_batch(pid: i64, epoch: i16, seq: i32, values: &[&str]) -> Bytes {
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

pub fn produce(
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

/// A Produce that must be appended: its base offset.
pub fn produce_ok(
    c: &mut Client,
    version: i16,
    id: &str,
    topic: &str,
    p: i32,
    records: Bytes,
) -> i64 {
    let r = produce(c, version, id, topic, p, records);
    assert_eq!(
        r.error_code, NONE,
        "Produce v{version} to {topic}-{p}: {:?}",
        r.error_message
    );
    r.base_offset
}

/// DescribeProducers of `topic`-`p`: (producer id, epoch, last sequence, open transaction's first
/// offset) of each.
pub fn producers(c: &mut Client, topic: &str, p: i32) -> Vec<(i64, i32, i32, i64)> {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(name(topic))
        .with_partition_indexes(vec![p])]);
    match c.request(ApiKey::DescribeProducers, 0, req) {
        Some(ResponseKind::DescribeProducers(r)) => {
            let part = &r.topics[0].partitions[0];
            assert_eq!(part.error_code, NONE);
            part.active_producers
                .iter()
                .map(|s| {
                    (
                        s.producer_id.0,
                        s.producer_epoch,
                        s.last_sequence,
                        s.current_txn_start_offset,
                    )
                })
                .collect()
        }
        other => panic!("DescribeProducers: {other:?}"),
    }
}

/// (last stable offset, high watermark) of `topic`-`p`, by ListOffsets with each isolation level.
pub fn lso_and_hw(c: &mut Client, topic: &str, p: i32) -> (i64, i64) {
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

/// Sends `req` until its error code is not one of the retriable coordinator errors clients
/// retry on (the coordinator loading or its topic being created), as a client does.
pub fn retrying<T>(mut send: impl FnMut() -> (i16, T)) -> (i16, T) {
    const RETRIABLE: [i16; 4] = [14, 15, 16, 51]; // load in progress, not available, not coordinator, concurrent txns
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (code, answer) = send();
        if !RETRIABLE.contains(&code) || std::time::Instant::now() > deadline {
            return (code, answer);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
