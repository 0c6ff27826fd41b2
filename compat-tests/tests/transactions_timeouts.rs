//! rdkafka against vltava: transaction timeouts. A stalled producer whose transaction the coordinator
//! aborted cannot commit it; a producer SIGKILLed mid-transaction and then the broker SIGKILLed and
//! restarted before the timeout is still aborted after it (the coordinator's state and timer replayed);
//! a `transaction.timeout.ms` over `transaction_max_timeout_ms` is refused.

use std::time::{Duration, Instant};

use rdkafka::producer::Producer;
use vltava_compat::kafka::{self};
use vltava_compat::txn::{self, at, Read};
use vltava_compat::{unique_topic, Broker, BrokerOptions};

const TIMEOUT: Duration = Duration::from_secs(60);
const COMMITTED: &str = "read_committed";
const UNCOMMITTED: &str = "read_uncommitted";

fn read(bs: &str, level: &str, topic: &str, ends: &[(i32, i64)]) -> Read {
    txn::read_all(bs, level, topic, &ends.iter().copied().collect(), TIMEOUT).unwrap()
}

#[test]
fn a_stalled_producer_cannot_commit_a_transaction_that_timed_out() {
    let (broker, _cfg) = txn::broker();
    let bs = broker.bootstrap();
    let topic = unique_topic("txn-stalled");
    kafka::create_topic(bs, &topic, 1, &[]).unwrap();
    let p = txn::producer(bs, &unique_topic("tid"), 2000);
    p.init_transactions(TIMEOUT).unwrap();
    p.begin_transaction().unwrap();
    assert_eq!(
        txn::send(&p, &topic, 0, &txn::values("late", 3)),
        vec![0, 1, 2]
    );
    // The coordinator aborts it after 2 s (marker at 3): the LSO moves on by itself.
    let c = txn::consumer(bs, COMMITTED);
    let got = txn::read_to(&c, &topic, &[(0, 0)].into(), &[(0, 4)].into(), TIMEOUT).unwrap();
    assert_eq!(got, [(0, vec![])].into());
    let err = p
        .commit_transaction(TIMEOUT)
        .expect_err("committing a transaction the coordinator aborted must fail");
    eprintln!("commit after the timeout: {err}");
    let plain = kafka::producer(bs, "all", "none");
    assert_eq!(
        txn::send(&plain, &topic, 0, &txn::values("plain", 1)),
        vec![4]
    );
    assert_eq!(
        read(bs, COMMITTED, &topic, &[(0, 5)]),
        [(0, at(4, &txn::values("plain", 1)))].into()
    );
}

#[test]
fn a_transaction_timeout_over_the_brokers_maximum_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("vltava.toml");
    std::fs::write(&cfg, "transaction_max_timeout_ms = 10000\n").expect("write config");
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec!["--config".into(), cfg.display().to_string()],
        ..BrokerOptions::default()
    });
    let p = txn::producer(broker.bootstrap(), &unique_topic("tid"), 20_000);
    let err = p
        .init_transactions(TIMEOUT)
        .expect_err("transaction.timeout.ms over transaction.max.timeout.ms");
    assert_eq!(
        err.rdkafka_error_code(),
        Some(rdkafka::types::RDKafkaErrorCode::InvalidTransactionTimeout),
        "{err}"
    );
    let ok = txn::producer(broker.bootstrap(), &unique_topic("tid"), 10_000);
    ok.init_transactions(TIMEOUT).unwrap();
}

#[test]
fn killed_producer_is_aborted_after_its_timeout_across_a_broker_restart() {
    const TXN_TIMEOUT_MS: u64 = 4000;
    let (mut broker, _cfg) = txn::broker();
    let topic = unique_topic("txn-killed-restart");
    kafka::create_topic(broker.bootstrap(), &topic, 1, &[]).unwrap();
    let spawned = Instant::now();
    let (mut child, line) = txn::spawn_open_transaction(
        env!("CARGO_BIN_EXE_vltava-txn-producer").as_ref(),
        broker.bootstrap(),
        &unique_topic("tid"),
        &topic,
        5,
        TXN_TIMEOUT_MS,
    )
    .unwrap();
    assert_eq!(line, "produced 0 4");
    let _ = child.kill();
    let _ = child.wait();
    // The broker dies too, before the timeout, and comes back: the transaction is still open.
    broker.restart();
    let bs = broker.bootstrap().to_string();
    let after = txn::values("after", 2);
    assert_eq!(
        txn::send(&kafka::producer(&bs, "all", "none"), &topic, 0, &after),
        vec![5, 6]
    );
    assert_eq!(
        txn::end_offset(&bs, COMMITTED, &topic, 0).unwrap(),
        0,
        "LSO after the restart"
    );
    // The replayed coordinator aborts it after its timeout (marker at 7).
    assert_eq!(
        read(&bs, COMMITTED, &topic, &[(0, 8)]),
        [(0, at(5, &after))].into()
    );
    let visible = spawned.elapsed();
    assert!(
        visible >= Duration::from_millis(TXN_TIMEOUT_MS),
        "the LSO moved after {visible:?}, before the transaction's timeout"
    );
    let mut all = at(0, &txn::values("dead", 5));
    all.extend(at(5, &after));
    assert_eq!(read(&bs, UNCOMMITTED, &topic, &[(0, 8)]), [(0, all)].into());
}
