//! The idempotent producer against the real `vltava` binary: InitProducerId at every advertised version,
//! retries written once, Kafka's error codes for gaps, stale epochs and bad producer fields, pipelining of
//! five in-flight batches, sequence wrap-around, and duplicate detection across SIGKILL.

mod common;

use bytes::Bytes;
use common::{name, read_all, BrokerProcess, Client};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

const NONE: i16 = 0;
const INVALID_REQUEST: i16 = 42;
const NOT_COORDINATOR: i16 = 16;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const INVALID_RECORD: i16 = 87;

fn create_topic(c: &mut Client, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let r = common::create_topic(c, 7, topic, partitions, configs);
    assert_eq!(r.topics[0].error_code, 0, "create {topic}");
}

fn init_request(txn: Option<&str>, pid: i64, epoch: i16) -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(txn.map(|t| TransactionalId(StrBytes::from_string(t.to_string()))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
}

fn init(c: &mut Client, version: i16, req: InitProducerIdRequest) -> InitProducerIdResponse {
    match c.request(ApiKey::InitProducerId, version, req) {
        Some(ResponseKind::InitProducerId(r)) => r,
        other => panic!("InitProducerId v{version}: {other:?}"),
    }
}

fn new_producer(c: &mut Client) -> i64 {
    let r = init(c, 4, init_request(None, -1, -1));
    assert_eq!((r.error_code, r.producer_epoch), (NONE, 0));
    r.producer_id.0
}

/// One uncompressed batch of producer `pid`/`epoch` whose first record has sequence `seq`.
fn pbatch(pid: i64, epoch: i16, seq: i32, values: &[&str]) -> Bytes {
    common::records_batch(pid, epoch, seq, now_ms(), values)
}

/// Batch timestamps are "now": the broker expires producer state by wall-clock age of the last batch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn produce_request(topic: &str, partition: i32, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

fn produce_v(
    c: &mut Client,
    version: i16,
    topic: &str,
    records: Bytes,
) -> PartitionProduceResponse {
    match c.request(ApiKey::Produce, version, produce_request(topic, 0, records)) {
        Some(ResponseKind::Produce(mut r)) => r.responses.remove(0).partition_responses.remove(0),
        other => panic!("Produce v{version}: {other:?}"),
    }
}

fn produce(c: &mut Client, topic: &str, records: Bytes) -> PartitionProduceResponse {
    produce_v(c, 9, topic, records)
}

fn values(records: &[(i64, String)]) -> Vec<&str> {
    records.iter().map(|(_, v)| v.as_str()).collect()
}

#[test]
fn init_producer_id_answers_every_advertised_version() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    let api = vltava::handlers::lookup(ApiKey::InitProducerId as i16).expect("advertised");
    assert_eq!((api.min_version, api.max_version), (0, 6));
    let mut ids = Vec::new();
    let mut txn_1: Option<(i64, i16)> = None;
    // Before `__transaction_state` exists no broker coordinates a transactional id (Kafka's
    // NOT_COORDINATOR); FindCoordinator creates it, as Kafka does, and names this broker.
    let early = init(&mut c, 0, init_request(Some("txn-1"), -1, -1));
    assert_eq!(early.error_code, NOT_COORDINATOR);
    let found = c
        .request(
            ApiKey::FindCoordinator,
            3,
            FindCoordinatorRequest::default()
                .with_key(StrBytes::from_static_str("txn-1"))
                .with_key_type(1),
        )
        .expect("FindCoordinator answer");
    let ResponseKind::FindCoordinator(found) = found else {
        panic!("not a FindCoordinator response");
    };
    assert_eq!(found.error_code, NONE);
    assert_eq!(
        format!("{}:{}", found.host.as_str(), found.port),
        broker.addr
    );
    for v in api.min_version..=api.max_version {
        let r = init(&mut c, v, init_request(None, -1, -1));
        assert_eq!((r.error_code, r.producer_epoch), (NONE, 0), "v{v}");
        assert!(r.producer_id.0 >= 0);
        ids.push(r.producer_id.0);
        if v >= 3 {
            // KIP-360 request with the current id and epoch: Kafka hands a non-transactional producer a
            // fresh id at epoch 0.
            let again = init(&mut c, v, init_request(None, r.producer_id.0, 0));
            assert_eq!((again.error_code, again.producer_epoch), (NONE, 0), "v{v}");
            ids.push(again.producer_id.0);
            // An id without an epoch (or the reverse) is malformed.
            let bad = init(&mut c, v, init_request(None, r.producer_id.0, -1));
            assert_eq!(bad.error_code, INVALID_REQUEST, "v{v}");
            assert_eq!((bad.producer_id.0, bad.producer_epoch), (-1, -1));
            let bad = init(&mut c, v, init_request(None, -1, 3));
            assert_eq!(bad.error_code, INVALID_REQUEST, "v{v}");
        }
        // A transactional id is served by its coordinator (this broker, the only one): the same id
        // and one epoch more at every initialisation, fencing the previous producer.
        let txn = init(&mut c, v, init_request(Some("txn-1"), -1, -1));
        assert_eq!(txn.error_code, NONE, "v{v}");
        assert!(txn.producer_id.0 >= 0);
        if let Some((pid, epoch)) = txn_1 {
            assert_eq!(
                (txn.producer_id.0, txn.producer_epoch),
                (pid, epoch + 1),
                "v{v}"
            );
        }
        txn_1 = Some((txn.producer_id.0, txn.producer_epoch));
        let empty = init(&mut c, v, init_request(Some(""), -1, -1));
        assert_eq!(empty.error_code, INVALID_REQUEST, "v{v}");
        let timeout = init(
            &mut c,
            v,
            init_request(Some("txn-1"), -1, -1).with_transaction_timeout_ms(0),
        );
        assert_eq!(timeout.error_code, INVALID_TRANSACTION_TIMEOUT, "v{v}");
        if v >= 6 {
            // KIP-939 two-phase commit only applies to transactional producers.
            let two_pc = init(&mut c, v, init_request(None, -1, -1).with_enable_2_pc(true));
            assert_eq!(
                two_pc.error_code, INVALID_REQUEST,
                "v{v} enable_2pc without a transactional id"
            );
            let keep = init(
                &mut c,
                v,
                init_request(None, -1, -1).with_keep_prepared_txn(true),
            );
            assert_eq!(
                keep.error_code, INVALID_REQUEST,
                "v{v} keep_prepared_txn without a transactional id"
            );
            let txn_2pc = init(
                &mut c,
                v,
                init_request(Some("txn-2"), -1, -1).with_enable_2_pc(true),
            );
            // Two-phase commit is off (Kafka's default transaction.two.phase.commit.enable=false).
            assert_eq!(
                txn_2pc.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                "v{v}"
            );
            assert_eq!(
                (
                    txn_2pc.ongoing_txn_producer_id.0,
                    txn_2pc.ongoing_txn_producer_epoch
                ),
                (-1, -1)
            );
        }
    }
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len(), "ids handed out twice: {ids:?}");

    // Ids come from Raft-allocated blocks: a restarted broker never reissues one.
    drop(c);
    drop(broker);
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    let after = new_producer(&mut c);
    assert!(!ids.contains(&after), "{after} reissued after restart");
}

#[test]
fn a_retried_batch_is_written_once_at_every_produce_version() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    create_topic(&mut c, "retry", 1, &[]);
    let pid = new_producer(&mut c);
    let api = vltava::handlers::lookup(ApiKey::Produce as i16).unwrap();
    let mut seq = 0;
    let mut expected = Vec::new();
    for v in api.min_version..api.max_version {
        // (v13 names topics by id; the by-name versions are enough to check the answer's encoding.)
        let a = format!("a{v}");
        let b = format!("b{v}");
        let first = produce_v(&mut c, v, "retry", pbatch(pid, 0, seq, &[&a, &b]));
        assert_eq!(first.error_code, NONE, "v{v}: {:?}", first.error_message);
        let retry = produce_v(&mut c, v, "retry", pbatch(pid, 0, seq, &[&a, &b]));
        assert_eq!(retry.error_code, NONE, "duplicate is acknowledged at v{v}");
        assert_eq!(
            retry.base_offset, first.base_offset,
            "original offset at v{v}"
        );
        expected.extend([a, b]);
        seq += 2;
    }
    let got = read_all(&mut c, "retry");
    assert_eq!(
        values(&got),
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(got.last().map(|(o, _)| *o), Some(expected.len() as i64 - 1));
}

#[test]
fn sequence_and_epoch_errors_get_kafka_codes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    create_topic(&mut c, "errs", 1, &[]);
    let pid = new_producer(&mut c);
    assert_eq!(
        produce(&mut c, "errs", pbatch(pid, 0, 0, &["x0", "x1"])).error_code,
        NONE
    );

    // A gap.
    let r = produce(&mut c, "errs", pbatch(pid, 0, 3, &["gap"]));
    assert_eq!(r.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(r.base_offset, -1);
    // A sequence already behind the window's batches but not one of them.
    let r = produce(&mut c, "errs", pbatch(pid, 0, 1, &["x1"]));
    assert_eq!(r.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);

    // The producer bumps its epoch (as the Java client does after an error): sequences restart at 0.
    let r = produce(&mut c, "errs", pbatch(pid, 1, 5, &["bad"]));
    assert_eq!(
        r.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER,
        "new epoch must start at 0"
    );
    let r = produce(&mut c, "errs", pbatch(pid, 1, 0, &["e1"]));
    assert_eq!((r.error_code, r.base_offset), (NONE, 2));
    // The old epoch is fenced: INVALID_PRODUCER_EPOCH (Kafka >= 2.7 never says PRODUCER_FENCED on Produce).
    for v in [3, 8, 9, 12] {
        let r = produce_v(&mut c, v, "errs", pbatch(pid, 0, 2, &["stale"]));
        assert_eq!(r.error_code, INVALID_PRODUCER_EPOCH, "v{v}");
    }
    // Even a retry of a batch of the old epoch.
    let r = produce(&mut c, "errs", pbatch(pid, 0, 0, &["x0", "x1"]));
    assert_eq!(r.error_code, INVALID_PRODUCER_EPOCH);

    // A negative sequence with a producer id is an invalid record (Kafka's LogValidator).
    let r = produce(&mut c, "errs", pbatch(pid, 1, -5, &["neg"]));
    assert_eq!(r.error_code, INVALID_RECORD);

    // Kafka allows exactly one batch per partition from Produce v3 on (ProduceRequest.validateRecords):
    // several batches are INVALID_RECORD whether or not they agree on the producer.
    let other = new_producer(&mut c);
    for two in [
        [pbatch(pid, 1, 1, &["m1"]), pbatch(other, 0, 0, &["m2"])].concat(),
        [pbatch(pid, 1, 1, &["m1"]), pbatch(pid, 2, 0, &["m2"])].concat(),
        [pbatch(pid, 1, 1, &["m1"]), common::batch(&["plain"])].concat(),
        [pbatch(pid, 1, 1, &["t1"]), pbatch(pid, 1, 2, &["t2"])].concat(),
    ] {
        assert_eq!(
            produce(&mut c, "errs", Bytes::from(two)).error_code,
            INVALID_RECORD
        );
    }
    // The producer's sequence did not move: its next batch is still sequence 1.
    let r = produce(&mut c, "errs", pbatch(pid, 1, 1, &["t1"]));
    assert_eq!((r.error_code, r.base_offset), (NONE, 3));

    // Nothing refused was written.
    assert_eq!(values(&read_all(&mut c, "errs")), ["x0", "x1", "e1", "t1"]);
}

#[test]
fn unknown_producer_ids_start_where_they_like_as_in_kafka() {
    // Since Kafka 2.5 (KIP-360) a broker without state for a producer id accepts its first batch at any
    // sequence instead of answering UNKNOWN_PRODUCER_ID; it does not check that the id was ever issued.
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    create_topic(&mut c, "unknown", 1, &[]);
    let never_issued = 987_654_321;
    let r = produce(&mut c, "unknown", pbatch(never_issued, 0, 42, &["u42"]));
    assert_eq!((r.error_code, r.base_offset), (NONE, 0));
    // From then on it is held to its sequence.
    let r = produce(&mut c, "unknown", pbatch(never_issued, 0, 44, &["u44"]));
    assert_eq!(r.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    let r = produce(&mut c, "unknown", pbatch(never_issued, 0, 43, &["u43"]));
    assert_eq!((r.error_code, r.base_offset), (NONE, 1));
    assert!(produce(&mut c, "unknown", pbatch(never_issued, 0, 42, &["u42"])).base_offset == 0);
    assert_eq!(values(&read_all(&mut c, "unknown")), ["u42", "u43"]);
}

#[test]
fn sequences_wrap_from_i32_max_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    create_topic(&mut c, "wrap", 1, &[]);
    let pid = new_producer(&mut c);
    // Three records from i32::MAX - 1: the batch's last sequence is 0 after wrapping.
    let first = pbatch(pid, 0, i32::MAX - 1, &["w0", "w1", "w2"]);
    assert_eq!(produce(&mut c, "wrap", first.clone()).error_code, NONE);
    let r = produce(&mut c, "wrap", pbatch(pid, 0, 1, &["w3"]));
    assert_eq!((r.error_code, r.base_offset), (NONE, 3));
    let r = produce(&mut c, "wrap", first);
    assert_eq!(
        (r.error_code, r.base_offset),
        (NONE, 0),
        "wrapped batch is still a duplicate"
    );
    let pid2 = new_producer(&mut c);
    produce(&mut c, "wrap", pbatch(pid2, 0, i32::MAX, &["y0"]));
    let r = produce(&mut c, "wrap", pbatch(pid2, 0, 0, &["y1"]));
    assert_eq!(
        (r.error_code, r.base_offset),
        (NONE, 5),
        "i32::MAX is followed by 0"
    );
    assert_eq!(
        values(&read_all(&mut c, "wrap")),
        ["w0", "w1", "w2", "w3", "y0", "y1"]
    );
}

#[test]
fn five_pipelined_batches_then_a_retry_of_the_second() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    create_topic(&mut c, "inflight", 1, &[]);
    let pid = new_producer(&mut c);
    let batches: Vec<Bytes> = (0..5)
        .map(|i| pbatch(pid, 0, 2 * i, &[&format!("p{i}a"), &format!("p{i}b")]))
        .collect();
    // All five on the wire before any answer is read, as a producer with max.in.flight = 5 does.
    for b in &batches {
        let req = c.encode_request(
            ApiKey::Produce,
            9,
            &produce_request("inflight", 0, b.clone()).into(),
        );
        c.send_frame(&req);
    }
    for i in 0..5 {
        let mut frame = c.read_frame().expect("produce answer");
        ResponseHeader::decode(&mut frame, ApiKey::Produce.response_header_version(9)).unwrap();
        let mut r = ProduceResponse::decode(&mut frame, 9).unwrap();
        let p = r.responses.remove(0).partition_responses.remove(0);
        assert_eq!((p.error_code, p.base_offset), (NONE, 2 * i as i64));
    }
    // The answer to the second was lost; the producer retries it.
    let r = produce(&mut c, "inflight", batches[1].clone());
    assert_eq!((r.error_code, r.base_offset), (NONE, 2));
    // Five newer batches later the first ones are out of the window, as in Kafka.
    for i in 5..10 {
        let r = produce(&mut c, "inflight", pbatch(pid, 0, 2 * i, &["n", "n"]));
        assert_eq!(r.error_code, NONE);
    }
    let r = produce(&mut c, "inflight", batches[1].clone());
    assert_eq!(r.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(read_all(&mut c, "inflight").len(), 20);
}

#[test]
fn duplicates_are_still_detected_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    // Small segments: rolls write producer state snapshots, recovery reads the newest and scans the rest.
    create_topic(&mut c, "crash", 1, &[("segment.bytes", "400")]);
    let pid = new_producer(&mut c);
    let other = new_producer(&mut c);
    let mut sent = Vec::new();
    for i in 0..30 {
        let v = format!("v{i}");
        let b = pbatch(pid, 0, i, &[&v]);
        assert_eq!(
            produce(&mut c, "crash", b.clone()).base_offset,
            2 * i as i64
        );
        produce(&mut c, "crash", pbatch(other, 0, i, &["o"]));
        sent.push(b);
    }
    let snapshots = std::fs::read_dir(dir.path().join("crash-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".snapshot")
        })
        .count();
    assert!(snapshots > 0, "segment rolls write snapshots");
    broker.kill();

    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    for i in [29, 27, 25] {
        let r = produce(&mut c, "crash", sent[i].clone());
        assert_eq!(
            (r.error_code, r.base_offset),
            (NONE, 2 * i as i64),
            "retry of batch {i}"
        );
    }
    let r = produce(&mut c, "crash", pbatch(pid, 0, 31, &["gap"]));
    assert_eq!(r.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    let r = produce(&mut c, "crash", pbatch(pid, 0, 30, &["v30"]));
    assert_eq!((r.error_code, r.base_offset), (NONE, 60));
    assert_eq!(read_all(&mut c, "crash").len(), 61);

    // Once more after a graceful stop.
    let mut broker = broker;
    drop(c);
    assert!(broker.terminate_with("TERM"));
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    let r = produce(&mut c, "crash", pbatch(pid, 0, 30, &["v30"]));
    assert_eq!((r.error_code, r.base_offset), (NONE, 60));
}
