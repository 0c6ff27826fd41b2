//! Transactions V2 (KIP-890 part 2) on the wire against the real broker process: Produce v12 has
//! the leader add the partition to the transaction (v11 only verifies), EndTxn v5 ends every
//! transaction with an epoch bump and answers the producer id and epoch to go on with, retries of
//! it are recognised, older epochs are fenced, an abort with nothing open is allowed and a commit
//! is not; the markers carry the bumped epoch, so the next transaction starts at sequence 0. An
//! EndTxn sent while the previous end still completes is answered CONCURRENT_TRANSACTIONS, and
//! retried as clients do.

mod common;

use std::time::{Duration, Instant};

use common::txn::*;
use common::{create_topic, BrokerProcess, Client};

/// A broker with `topic` of `partitions`, a connection, and `__transaction_state` ready for
/// `transactional_id` (FindCoordinator creates it).
fn broker_with_topic(
    topic: &str,
    partitions: i32,
    transactional_id: &str,
) -> (tempfile::TempDir, BrokerProcess, Client) {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    create_topic(&mut c, 5, topic, partitions, &[]);
    assert_eq!(find_coordinator(&mut c, transactional_id).error_code, NONE);
    (dir, broker, c)
}

/// Waits until the LSO and high watermark of `topic`-`p` are both `offset` (the markers landed).
fn await_stable_at(c: &mut Client, topic: &str, p: i32, offset: i64) {
    let until = Instant::now() + Duration::from_secs(10);
    while lso_and_hw(c, topic, p) != (offset, offset) {
        assert!(
            Instant::now() < until,
            "{topic}-{p} not stable at {offset}: {:?}",
            lso_and_hw(c, topic, p)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_transaction_ends_with_an_epoch_bump_and_produce_v12_adds_its_partition() {
    let (_dir, _broker, mut c) = broker_with_topic("v2", 2, "v2-a");
    let (pid, e0) = init(&mut c, "v2-a");

    // No AddPartitionsToTxn: Produce v11 is only verified and refused, v12 has it added.
    let r = produce(&mut c, 11, "v2-a", "v2", 1, txn_batch(pid, e0, 0, &["x"]));
    assert_eq!(r.error_code, TRANSACTION_ABORTABLE, "{:?}", r.error_message);
    let batch = txn_batch(pid, e0, 0, &["a", "b"]);
    assert_eq!(produce_ok(&mut c, 12, "v2-a", "v2", 0, batch), 0);
    assert_eq!(
        lso_and_hw(&mut c, "v2", 0),
        (0, 2),
        "the transaction is open"
    );
    assert_eq!(
        verify(&mut c, "v2-a", (pid, e0), "v2", &[0, 1]),
        vec![NONE, TRANSACTION_ABORTABLE],
        "partition 0 is in the transaction, 1 is not"
    );

    // The commit answers the bumped epoch; the marker (at offset 2) carries it.
    assert_eq!(
        retrying(|| end_txn_v(&mut c, 5, "v2-a", (pid, e0), true)),
        (NONE, (pid, e0 + 1))
    );
    await_stable_at(&mut c, "v2", 0, 3);
    assert_eq!(
        producers(&mut c, "v2", 0),
        vec![(pid, i32::from(e0 + 1), -1, -1)],
        "after the marker: the bumped epoch, no sequence of it yet, nothing open"
    );
    // A retried commit (its answer lost) gets the same answer; an abort of it is invalid.
    assert_eq!(
        retrying(|| end_txn_v(&mut c, 5, "v2-a", (pid, e0), true)),
        (NONE, (pid, e0 + 1))
    );
    assert_eq!(
        retrying(|| end_txn_v(&mut c, 5, "v2-a", (pid, e0), false)).0,
        INVALID_TXN_STATE
    );
    // The old epoch cannot open a transaction any more.
    let r = produce(
        &mut c,
        12,
        "v2-a",
        "v2",
        1,
        txn_batch(pid, e0, 1, &["zombie"]),
    );
    assert_eq!(
        r.error_code, INVALID_PRODUCER_EPOCH,
        "{:?}",
        r.error_message
    );

    // The next transaction starts at sequence 0 of the new epoch, in both partitions.
    let e1 = e0 + 1;
    let batch = txn_batch(pid, e1, 0, &["c"]);
    assert_eq!(produce_ok(&mut c, 12, "v2-a", "v2", 0, batch), 3);
    assert_eq!(
        produce_ok(&mut c, 12, "v2-a", "v2", 1, txn_batch(pid, e1, 0, &["d"])),
        0
    );
    assert_eq!(
        retrying(|| end_txn_v(&mut c, 5, "v2-a", (pid, e1), false)),
        (NONE, (pid, e1 + 1))
    );
    await_stable_at(&mut c, "v2", 0, 5);
    await_stable_at(&mut c, "v2", 1, 2);

    // Nothing open: an abort still bumps (the client cannot know whether a Produce opened a
    // transaction), a commit is invalid, an older epoch is fenced.
    let e2 = e1 + 1;
    assert_eq!(
        retrying(|| end_txn_v(&mut c, 5, "v2-a", (pid, e2), true)).0,
        INVALID_TXN_STATE
    );
    assert_eq!(
        retrying(|| end_txn_v(&mut c, 5, "v2-a", (pid, e2), false)),
        (NONE, (pid, e2 + 1))
    );
    assert_eq!(
        retrying(|| end_txn_v(&mut c, 5, "v2-a", (pid, e0), false)).0,
        PRODUCER_FENCED
    );
    assert_eq!(lso_and_hw(&mut c, "v2", 0), (5, 5), "no marker for nothing");
}

#[test]
fn a_leaders_add_opens_the_transaction_and_v1_ends_keep_the_epoch() {
    let (_dir, _broker, mut c) = broker_with_topic("v2b", 2, "v2-b");
    let producer = init(&mut c, "v2-b");
    let (pid, epoch) = producer;

    // AddPartitionsToTxn v5 without verify_only, as a leader sends it: added.
    assert_eq!(
        leader_add(&mut c, "v2-b", producer, "v2b", &[0, 1]),
        vec![NONE, NONE]
    );
    assert_eq!(
        verify(&mut c, "v2-b", producer, "v2b", &[0, 1]),
        vec![NONE, NONE]
    );
    assert_eq!(
        leader_add(&mut c, "v2-b", (pid, epoch - 1), "v2b", &[0]),
        vec![PRODUCER_FENCED]
    );
    assert_eq!(
        produce_ok(
            &mut c,
            11,
            "v2-b",
            "v2b",
            1,
            txn_batch(pid, epoch, 0, &["v"]),
        ),
        0
    );
    // EndTxn v4 (Transactions V1) keeps the epoch: the producer goes on with it.
    assert_eq!(end_txn_v(&mut c, 4, "v2-b", producer, true).0, NONE);
    await_stable_at(&mut c, "v2b", 1, 2);
    assert_eq!(
        producers(&mut c, "v2b", 1),
        vec![(pid, i32::from(epoch), 0, -1)]
    );
    assert_eq!(
        leader_add(&mut c, "v2-b", producer, "v2b", &[1]),
        vec![NONE]
    );
}

/// The epoch runs out: InitProducerId bumps it to the last but one (32765), an EndTxn v5 abort to
/// the last a client may hold (32766), and the next end moves the producer to a new producer id at
/// epoch 0 (its markers under the old id at 32767), which the retry of that end is answered too.
#[test]
fn an_exhausted_epoch_moves_the_producer_to_a_new_id() {
    let (_dir, _broker, mut c) = broker_with_topic("v2x", 1, "v2-x");
    let (pid, mut epoch) = init(&mut c, "v2-x");
    while epoch < i16::MAX - 2 {
        epoch = init(&mut c, "v2-x").1;
    }
    assert_eq!(
        retrying(|| end_txn_v(&mut c, 5, "v2-x", (pid, epoch), false)),
        (NONE, (pid, i16::MAX - 1))
    );
    let last = i16::MAX - 1;
    assert_eq!(
        produce_ok(
            &mut c,
            12,
            "v2-x",
            "v2x",
            0,
            txn_batch(pid, last, 0, &["last"]),
        ),
        0
    );
    let (code, (next_pid, next_epoch)) =
        retrying(|| end_txn_v(&mut c, 5, "v2-x", (pid, last), true));
    assert_eq!(code, NONE);
    assert!(
        next_pid != pid && next_epoch == 0,
        "{next_pid}/{next_epoch}"
    );
    await_stable_at(&mut c, "v2x", 0, 2);
    assert_eq!(
        producers(&mut c, "v2x", 0),
        vec![(pid, i32::from(i16::MAX), -1, -1)],
        "the commit marker went out under the old id at the fencing epoch"
    );
    // A retry of that end is recognised; the new id produces from sequence 0.
    assert_eq!(
        retrying(|| end_txn_v(&mut c, 5, "v2-x", (pid, last), true)),
        (NONE, (next_pid, 0))
    );
    assert_eq!(
        produce_ok(
            &mut c,
            12,
            "v2-x",
            "v2x",
            0,
            txn_batch(next_pid, 0, 0, &["new"]),
        ),
        2
    );
    assert_eq!(
        retrying(|| end_txn_v(&mut c, 5, "v2-x", (next_pid, 0), true)),
        (NONE, (next_pid, 1))
    );
}
