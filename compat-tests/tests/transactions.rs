//! rdkafka (librdkafka 2.12) transactions against a real vltava process: commit and abort as
//! read_committed and read_uncommitted consumers see them (exact records at exact offsets, the
//! control markers taking an offset each), the last stable offset held by an open transaction,
//! fencing by a second producer with the same transactional.id, `send_offsets_to_transaction`, and
//! a producer SIGKILLed mid-transaction that the coordinator aborts after its timeout.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use vltava_compat::kafka::{self, Rec};
use vltava_compat::txn::{self, at, Read};
use vltava_compat::unique_topic;

const TIMEOUT: Duration = Duration::from_secs(60);
const COMMITTED: &str = "read_committed";
const UNCOMMITTED: &str = "read_uncommitted";

fn ends(list: &[(i32, i64)]) -> BTreeMap<i32, i64> {
    list.iter().copied().collect()
}

fn read(bs: &str, level: &str, topic: &str, e: &[(i32, i64)]) -> Read {
    txn::read_all(bs, level, topic, &ends(e), TIMEOUT).unwrap()
}

#[test]
fn committed_transaction_over_two_partitions_is_read_committed() {
    let (broker, _cfg) = txn::broker();
    let bs = broker.bootstrap();
    let topic = unique_topic("txn-commit");
    kafka::create_topic(bs, &topic, 2, &[]).unwrap();
    let p = txn::producer(bs, &unique_topic("tid"), 60_000);
    p.init_transactions(TIMEOUT).unwrap();
    p.begin_transaction().unwrap();
    let (a, b) = (txn::values("p0", 6), txn::values("p1", 4));
    assert_eq!(txn::send(&p, &topic, 0, &a), (0..6).collect::<Vec<_>>());
    assert_eq!(txn::send(&p, &topic, 1, &b), (0..4).collect::<Vec<_>>());
    p.commit_transaction(TIMEOUT).unwrap();

    // Each partition: the records, then the commit marker (one offset).
    let expected: Read = [(0, at(0, &a)), (1, at(0, &b))].into();
    for level in [COMMITTED, UNCOMMITTED] {
        assert_eq!(
            read(bs, level, &topic, &[(0, 7), (1, 5)]),
            expected,
            "{level}"
        );
    }
    assert_eq!(txn::end_offset(bs, COMMITTED, &topic, 0).unwrap(), 7, "LSO");
    assert_eq!(
        txn::end_offset(bs, UNCOMMITTED, &topic, 1).unwrap(),
        5,
        "high watermark"
    );
}

#[test]
fn aborted_transaction_is_hidden_from_read_committed_only() {
    let (broker, _cfg) = txn::broker();
    let bs = broker.bootstrap();
    let topic = unique_topic("txn-abort");
    kafka::create_topic(bs, &topic, 1, &[]).unwrap();
    let p = txn::producer(bs, &unique_topic("tid"), 60_000);
    p.init_transactions(TIMEOUT).unwrap();

    let (aborted, committed) = (txn::values("aborted", 5), txn::values("committed", 3));
    p.begin_transaction().unwrap();
    assert_eq!(
        txn::send(&p, &topic, 0, &aborted),
        (0..5).collect::<Vec<_>>()
    );
    p.abort_transaction(TIMEOUT).unwrap();
    // The abort marker is at 5.
    p.begin_transaction().unwrap();
    assert_eq!(
        txn::send(&p, &topic, 0, &committed),
        (6..9).collect::<Vec<_>>()
    );
    p.commit_transaction(TIMEOUT).unwrap();

    let rc = read(bs, COMMITTED, &topic, &[(0, 10)]);
    assert_eq!(rc, [(0, at(6, &committed))].into(), "read_committed");
    let ru = read(bs, UNCOMMITTED, &topic, &[(0, 10)]);
    let mut all = at(0, &aborted);
    all.extend(at(6, &committed));
    assert_eq!(ru, [(0, all)].into(), "read_uncommitted");
    assert_eq!(
        txn::end_offset(bs, COMMITTED, &topic, 0).unwrap(),
        10,
        "LSO"
    );
}

#[test]
fn open_transaction_holds_the_last_stable_offset() {
    let (broker, _cfg) = txn::broker();
    let bs = broker.bootstrap();
    let topic = unique_topic("txn-lso");
    kafka::create_topic(bs, &topic, 1, &[]).unwrap();
    let plain = kafka::producer(bs, "all", "none");
    let before = txn::values("before", 3);
    assert_eq!(txn::send(&plain, &topic, 0, &before), vec![0, 1, 2]);

    let p = txn::producer(bs, &unique_topic("tid"), 60_000);
    p.init_transactions(TIMEOUT).unwrap();
    p.begin_transaction().unwrap();
    let inside = txn::values("inside", 5);
    assert_eq!(
        txn::send(&p, &topic, 0, &inside),
        (3..8).collect::<Vec<_>>()
    );
    let after = txn::values("after", 2);
    assert_eq!(txn::send(&plain, &topic, 0, &after), vec![8, 9]);

    // Open: the LSO is the transaction's first offset; the high watermark is past everything.
    assert_eq!(
        txn::end_offset(bs, COMMITTED, &topic, 0).unwrap(),
        3,
        "LSO while open"
    );
    assert_eq!(
        txn::end_offset(bs, UNCOMMITTED, &topic, 0).unwrap(),
        10,
        "HW while open"
    );
    // A read_committed reader stops at the LSO (EOF there, position 3) with only the records before.
    let c = txn::consumer(bs, COMMITTED);
    let start = ends(&[(0, 0)]);
    let got = txn::read_to(&c, &topic, &start, &ends(&[(0, 3)]), TIMEOUT).unwrap();
    assert_eq!(
        got,
        [(0, at(0, &before))].into(),
        "read_committed while open"
    );

    p.commit_transaction(TIMEOUT).unwrap();
    // The same reader goes on from 3 to the end (the commit marker is at 10).
    let rest = txn::read_to(&c, &topic, &ends(&[(0, 3)]), &ends(&[(0, 11)]), TIMEOUT).unwrap();
    let mut expected = at(3, &inside);
    expected.extend(at(8, &after));
    assert_eq!(
        rest,
        [(0, expected)].into(),
        "read_committed after the commit"
    );
    assert_eq!(
        txn::end_offset(bs, COMMITTED, &topic, 0).unwrap(),
        11,
        "LSO after the commit"
    );
}

/// The error code and fatality of a transactional API error.
fn txn_error(e: &KafkaError) -> (RDKafkaErrorCode, bool) {
    match e {
        KafkaError::Transaction(t) => (t.code(), t.is_fatal()),
        other => panic!("not a transaction error: {other}"),
    }
}

#[test]
fn second_producer_with_the_same_id_fences_the_first() {
    let (broker, _cfg) = txn::broker();
    let bs = broker.bootstrap();
    let topic = unique_topic("txn-fence");
    kafka::create_topic(bs, &topic, 1, &[]).unwrap();
    let id = unique_topic("tid");
    let first = txn::producer(bs, &id, 60_000);
    first.init_transactions(TIMEOUT).unwrap();
    first.begin_transaction().unwrap();
    let zombie = txn::values("zombie", 4);
    assert_eq!(
        txn::send(&first, &topic, 0, &zombie),
        (0..4).collect::<Vec<_>>()
    );

    // The second producer's InitProducerId bumps the epoch and aborts the first one's transaction.
    let second = txn::producer(bs, &id, 60_000);
    second.init_transactions(TIMEOUT).unwrap();
    // The zombie's next record (its partition already in the transaction, so it goes straight to the
    // partition leader) carries the old epoch: the partition must refuse it.
    let late = kafka::produce(&first, &topic, &[Rec::new(0, None, Some(b"late"))]);
    eprintln!("the fenced producer's record: {late:?}");
    assert!(
        late[0].is_err(),
        "the fenced producer's record was accepted: {late:?}"
    );
    let err = first
        .commit_transaction(TIMEOUT)
        .expect_err("the fenced producer's commit must fail");
    let (code, fatal) = txn_error(&err);
    assert!(fatal, "fenced error must be fatal: {err}");
    assert!(
        matches!(
            code,
            RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
        ),
        "unexpected fencing error {code:?}: {err}"
    );

    // Abort marker at 4; the second producer's records at 5..8, its commit marker at 8.
    second.begin_transaction().unwrap();
    let good = txn::values("good", 3);
    assert_eq!(
        txn::send(&second, &topic, 0, &good),
        (5..8).collect::<Vec<_>>()
    );
    second.commit_transaction(TIMEOUT).unwrap();
    assert_eq!(
        read(bs, COMMITTED, &topic, &[(0, 9)]),
        [(0, at(5, &good))].into()
    );
    let mut all = at(0, &zombie);
    all.extend(at(5, &good));
    assert_eq!(read(bs, UNCOMMITTED, &topic, &[(0, 9)]), [(0, all)].into());
}

fn group_consumer(bs: &str, group: &str) -> BaseConsumer {
    let mut c = kafka::group_consumer_config(bs, group, 10_000);
    c.set("isolation.level", COMMITTED);
    c.create().expect("create group consumer")
}

/// The group's committed offset for partition 0 of `topic` (`None`: nothing committed), asked
/// with require_stable by a consumer of the group (librdkafka sends OffsetFetch v7+ that way).
fn committed_offset(bs: &str, group: &str, topic: &str) -> Option<i64> {
    let c = group_consumer(bs, group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let list = c.committed_offsets(tpl, TIMEOUT).unwrap();
    match list.find_partition(topic, 0).map(|e| e.offset()) {
        Some(Offset::Offset(o)) => Some(o),
        _ => None,
    }
}

#[test]
fn send_offsets_to_transaction_commits_with_the_transaction() {
    let (broker, _cfg) = txn::broker();
    let bs = broker.bootstrap();
    let (input, output) = (unique_topic("txn-in"), unique_topic("txn-out"));
    kafka::create_topic(bs, &input, 1, &[]).unwrap();
    kafka::create_topic(bs, &output, 1, &[]).unwrap();
    let inputs = txn::values("in", 10);
    txn::send(&kafka::producer(bs, "all", "none"), &input, 0, &inputs);

    // consume-transform-produce: a subscribed member reads all inputs.
    let group = unique_topic("txn-g");
    let consumer = group_consumer(bs, &group);
    consumer.subscribe(&[&input]).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while seen.len() < inputs.len() {
        assert!(Instant::now() < deadline, "consumed only {seen:?}");
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            let m = m.unwrap();
            seen.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    assert_eq!(seen, inputs);
    let metadata = consumer.group_metadata().expect("group metadata");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&input, 0, Offset::Offset(10))
        .unwrap();
    let outputs: Vec<String> = inputs.iter().map(|v| format!("out-{v}")).collect();

    let p = txn::producer(bs, &unique_topic("tid"), 60_000);
    p.init_transactions(TIMEOUT).unwrap();
    // Aborted: neither the outputs nor the offsets count.
    p.begin_transaction().unwrap();
    txn::send(&p, &output, 0, &outputs[..5]);
    p.send_offsets_to_transaction(&offsets, &metadata, TIMEOUT)
        .unwrap();
    p.abort_transaction(TIMEOUT).unwrap();
    assert_eq!(
        committed_offset(bs, &group, &input),
        None,
        "after the abort"
    );

    // Committed: outputs at 6..16 (abort marker at 5), the group's offset 10.
    p.begin_transaction().unwrap();
    assert_eq!(
        txn::send(&p, &output, 0, &outputs),
        (6..16).collect::<Vec<_>>()
    );
    p.send_offsets_to_transaction(&offsets, &metadata, TIMEOUT)
        .unwrap();
    p.commit_transaction(TIMEOUT).unwrap();
    assert_eq!(
        committed_offset(bs, &group, &input),
        Some(10),
        "after the commit"
    );
    assert_eq!(
        read(bs, COMMITTED, &output, &[(0, 17)]),
        [(0, at(6, &outputs))].into()
    );
}

#[test]
fn producer_killed_mid_transaction_is_aborted_after_its_timeout() {
    const TXN_TIMEOUT_MS: u64 = 3000;
    let (broker, _cfg) = txn::broker();
    let bs = broker.bootstrap();
    let topic = unique_topic("txn-killed");
    kafka::create_topic(bs, &topic, 1, &[]).unwrap();
    let id = unique_topic("tid");

    let spawned = Instant::now();
    let (mut child, line) = txn::spawn_open_transaction(
        env!("CARGO_BIN_EXE_vltava-txn-producer").as_ref(),
        bs,
        &id,
        &topic,
        5,
        TXN_TIMEOUT_MS,
    )
    .unwrap();
    assert_eq!(line, "produced 0 4");

    // Records after the open transaction, from a plain producer: 5..8.
    let after = txn::values("after", 3);
    assert_eq!(
        txn::send(&kafka::producer(bs, "all", "none"), &topic, 0, &after),
        vec![5, 6, 7]
    );
    assert_eq!(
        txn::end_offset(bs, COMMITTED, &topic, 0).unwrap(),
        0,
        "LSO while open"
    );
    let _ = child.kill();
    let _ = child.wait();

    // The coordinator aborts it after transaction.timeout.ms (the marker at 8): the read_committed
    // reader moves on to 9, seeing only the later records.
    let got = read(bs, COMMITTED, &topic, &[(0, 9)]);
    let visible = spawned.elapsed();
    assert_eq!(got, [(0, at(5, &after))].into(), "read_committed");
    assert!(
        visible >= Duration::from_millis(TXN_TIMEOUT_MS),
        "the LSO moved after {visible:?}, before the transaction's timeout"
    );
    assert_eq!(
        txn::end_offset(bs, COMMITTED, &topic, 0).unwrap(),
        9,
        "LSO after the abort"
    );
    let mut all = at(0, &txn::values("dead", 5));
    all.extend(at(5, &after));
    assert_eq!(read(bs, UNCOMMITTED, &topic, &[(0, 9)]), [(0, all)].into());

    // The id is usable again: a new producer with it commits.
    let p = txn::producer(bs, &id, 60_000);
    p.init_transactions(TIMEOUT).unwrap();
    p.begin_transaction().unwrap();
    let again = txn::values("again", 2);
    assert_eq!(txn::send(&p, &topic, 0, &again), vec![9, 10]);
    p.commit_transaction(TIMEOUT).unwrap();
    let mut rc = at(5, &after);
    rc.extend(at(9, &again));
    assert_eq!(read(bs, COMMITTED, &topic, &[(0, 12)]), [(0, rc)].into());
}
