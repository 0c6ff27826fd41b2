//! Transactions on the wire against the real broker process: the coordinator's answers (FindCoordinator
//! TRANSACTION, InitProducerId, AddPartitionsToTxn, EndTxn) and the partition leader's verification
//! of transactional batches (KIP-890 part 1): a batch for a partition not added to the producer's
//! transaction, or arriving after the transaction ended, is refused and never holds the last stable
//! offset; one for an added partition is appended, and its transaction's marker moves the LSO.

mod common;

use common::txn::*;
use common::{create_topic, BrokerProcess};

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
    assert_eq!(
        producers(&mut c, "txv", 0),
        vec![(pid, i32::from(epoch), 1, 0)],
        "the open transaction's producer, as kafka-transactions.sh find-hanging reads it"
    );
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
